// taba-cli entry point; the logic is in cli.cpp.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return taba::cli::run(argc, argv);
}
