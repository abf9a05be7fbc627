# Installation and the Debian package. Included from the top-level CMakeLists.txt.
#
# `cmake --install BUILD --prefix P` lays out
#   P/bin/mdecollect
#   P/etc/mdecollect/mdecollect.yaml                 the packaged configuration
#   P/lib/systemd/system/mdecollect.service          ExecStart= and paths point into P
#   P/share/doc/mdecollect/README.md, examples/mdecollect.example.yaml, examples/certificate.conf
# With the prefix /usr (or /), as cpack installs for the .deb, the configuration and the unit
# go to /etc/mdecollect and /lib/systemd/system (Debian 12's unit directory).
#
# `cpack` in a build directory makes mdecollect_<version>_<arch>.deb (scripts/package).
include(GNUInstallDirs)

install(TARGETS mdecollect RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/mdecollect.example.yaml
              ${PROJECT_SOURCE_DIR}/packaging/certificate.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# /etc and /lib/systemd/system lie outside the prefix /usr, so install() cannot name them
# relative to it: they are chosen when installing, from the prefix given then. file(INSTALL)
# honours DESTDIR (cpack installs with DESTDIR and the prefix /usr).
install(CODE "
set(mdec_packaging_dir [[${PROJECT_SOURCE_DIR}/packaging]])
set(mdec_bindir [[${CMAKE_INSTALL_BINDIR}]])
set(mdec_docdir [[${CMAKE_INSTALL_DOCDIR}]])
set(mdec_work_dir [[${PROJECT_BINARY_DIR}/packaging]])
")
install(CODE [[
string(REGEX REPLACE "/+$" "" mdec_prefix "${CMAKE_INSTALL_PREFIX}")
if(mdec_prefix STREQUAL "" OR mdec_prefix STREQUAL "/usr")
  set(mdec_etc_dir "/etc")
  set(mdec_unit_dir "/lib/systemd/system")
else()
  set(mdec_etc_dir "${mdec_prefix}/etc")
  set(mdec_unit_dir "${mdec_prefix}/lib/systemd/system")
endif()
file(INSTALL DESTINATION "${mdec_etc_dir}/mdecollect" TYPE FILE
     FILES "${mdec_packaging_dir}/mdecollect.yaml")

# The unit names /usr/bin/mdecollect and /etc/mdecollect/...: rewritten for another prefix.
file(READ "${mdec_packaging_dir}/mdecollect.service" mdec_unit)
if(NOT mdec_prefix STREQUAL "/usr")
  string(REPLACE "/usr/bin/mdecollect" "${mdec_prefix}/${mdec_bindir}/mdecollect" mdec_unit
         "${mdec_unit}")
  string(REPLACE "/usr/share/doc/mdecollect" "${mdec_prefix}/${mdec_docdir}" mdec_unit
         "${mdec_unit}")
  string(REPLACE "/etc/mdecollect/" "${mdec_etc_dir}/mdecollect/" mdec_unit "${mdec_unit}")
endif()
# Written in a directory of its own for this destination: installs may run at once (cpack
# and `cmake --install` in the packaging tests).
string(MD5 mdec_hash "$ENV{DESTDIR}|${mdec_prefix}")
file(WRITE "${mdec_work_dir}/${mdec_hash}/mdecollect.service" "${mdec_unit}")
file(INSTALL DESTINATION "${mdec_unit_dir}" TYPE FILE
     FILES "${mdec_work_dir}/${mdec_hash}/mdecollect.service")
file(REMOVE_RECURSE "${mdec_work_dir}/${mdec_hash}")
]])

# The .deb: `cpack` (generator DEB) in a build directory that is built already. cpack does not
# build (neither does `ninja install`): the packaging test packs the test build while other
# tests run its binaries.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(MDEC_PACKAGE_MAINTAINER "mdecollect maintainers <maintainers@users.noreply.r-seed-cdce2507.example>"
    CACHE STRING "The Maintainer: field of the .deb")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mdecollect)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Microsoft Defender for Endpoint alerts to Elastic Common Schema documents")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
    "mdecollect polls the Microsoft Defender for Endpoint alerts API (or Microsoft Graph\n"
    "alerts_v2) and maps every alert to the Elastic Common Schema 8.11 exactly as Elastic's\n"
    "Microsoft Defender for Endpoint integration does, writing NDJSON files or indexing into\n"
    "Elasticsearch. Nothing is missed or stored twice across restarts and crashes.\n"
    "The package runs it as a hardened systemd service (mdecollect.service); the client\n"
    "secret is a systemd credential read from /etc/mdecollect/client-secret.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${MDEC_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # mdecollect_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # Depends: from dpkg-shlibdeps
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
include(CPack)
