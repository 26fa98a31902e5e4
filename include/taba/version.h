/* taba/version.h — tabad release and ABI versions. */
#ifndef TABA_VERSION_H
#define TABA_VERSION_H

#define TABA_VERSION_MAJOR 0
#define TABA_VERSION_MINOR 1
#define TABA_VERSION_PATCH 0
#define TABA_VERSION_STRING "0.1.0"

#endif /* TABA_VERSION_H */
