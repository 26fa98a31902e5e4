# Install-time step (cmake --install, cpack): the systemd units and the default
# /etc/taba/taba.toml. It runs at install time, not at configure time, because
# the units name absolute paths (the tabad binary, the configuration file) and
# those depend on the prefix given then: `cmake --install build --prefix P`
# writes units that start P/bin/tabad with P/etc/taba/taba.toml, and cpack
# (prefix /usr, files staged under DESTDIR) writes units that start
# /usr/bin/tabad with /etc/taba/taba.toml.
#
# Set by the install(CODE) that includes this file:
#   TABA_SOURCE_DIR, TABA_BINARY_DIR
#   TABA_BINDIR, TABA_SYSCONFDIR, TABA_DOCDIR  GNUInstallDirs values (relative or absolute)
#   TABA_SYSTEMD_UNIT_DIR                      relative: under the prefix

string(REGEX REPLACE "/+$" "" _taba_prefix "${CMAKE_INSTALL_PREFIX}")

# A relative directory under the prefix; an absolute one as it is.
function(_taba_full_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${_taba_prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

_taba_full_dir(TABA_BIN_DIR "${TABA_BINDIR}")
_taba_full_dir(TABA_DOC_DIR "${TABA_DOCDIR}")
_taba_full_dir(_taba_unit_dir "${TABA_SYSTEMD_UNIT_DIR}")
# GNUInstallDirs' rule: the prefixes / and /usr keep their configuration in /etc.
if(NOT IS_ABSOLUTE "${TABA_SYSCONFDIR}" AND (_taba_prefix STREQUAL "" OR _taba_prefix STREQUAL "/usr"))
  set(_taba_etc_dir "/${TABA_SYSCONFDIR}")
else()
  _taba_full_dir(_taba_etc_dir "${TABA_SYSCONFDIR}")
endif()
set(TABA_CONFIG_FILE "${_taba_etc_dir}/taba/taba.toml")

# Generated per (DESTDIR, prefix), so that installs to different places can run
# at the same time from one build tree; removed once installed.
string(SHA1 _taba_key "$ENV{DESTDIR}|${_taba_prefix}")
string(SUBSTRING "${_taba_key}" 0 16 _taba_key)
set(_taba_gen_dir "${TABA_BINARY_DIR}/systemd-units/${_taba_key}")
foreach(_taba_unit IN ITEMS tabad.service tabad@.service)
  configure_file("${TABA_SOURCE_DIR}/systemd/${_taba_unit}.in" "${_taba_gen_dir}/${_taba_unit}" @ONLY)
endforeach()
file(INSTALL DESTINATION "${_taba_unit_dir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${_taba_gen_dir}/tabad.service" "${_taba_gen_dir}/tabad@.service")
file(REMOVE_RECURSE "${_taba_gen_dir}")

# The default configuration. An install over an existing file that differs
# from taba.toml.example leaves it alone, keeping the operator's edits (the
# .deb marks it a conffile, so dpkg does the same); the annotated example of
# this version is in the doc directory either way.
set(_taba_config_installed "$ENV{DESTDIR}${TABA_CONFIG_FILE}")
if(EXISTS "${_taba_config_installed}")
  file(SHA256 "${_taba_config_installed}" _taba_installed_hash)
  file(SHA256 "${TABA_SOURCE_DIR}/taba.toml.example" _taba_example_hash)
endif()
if(EXISTS "${_taba_config_installed}" AND NOT _taba_installed_hash STREQUAL _taba_example_hash)
  message(STATUS "Keeping existing (differs from taba.toml.example): ${_taba_config_installed}")
else()
  file(INSTALL DESTINATION "${_taba_etc_dir}/taba" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       RENAME taba.toml FILES "${TABA_SOURCE_DIR}/taba.toml.example")
endif()
