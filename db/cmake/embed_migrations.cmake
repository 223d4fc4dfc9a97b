# Generates a C++ source file holding every db/migrations/NNNN_name.sql as bytes, so the
# forkcast binary carries its schema and does not depend on the working directory.
# Run at build time: cmake -DMIGRATIONS_DIR=<dir> -DOUTPUT=<file.cpp> -P embed_migrations.cmake
# Bytes rather than a raw string literal so that no file content can break the generated
# code. The interface is db/src/embedded_migrations.hpp.
file(GLOB files RELATIVE "${MIGRATIONS_DIR}" "${MIGRATIONS_DIR}/*.sql")
list(SORT files)
set(arrays "")
set(table "")
set(previous 0)
foreach(file IN LISTS files)
  if(NOT file MATCHES "^([0-9][0-9][0-9][0-9])_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "db/migrations/${file}: the name must be NNNN_lowercase_name.sql")
  endif()
  set(name "${CMAKE_MATCH_2}")
  math(EXPR version "${CMAKE_MATCH_1}")
  if(version LESS_EQUAL previous)
    message(FATAL_ERROR "db/migrations/${file}: versions must start at 1 and increase without repeats")
  endif()
  set(previous ${version})
  file(SHA256 "${MIGRATIONS_DIR}/${file}" sha)
  file(READ "${MIGRATIONS_DIR}/${file}" hex HEX)
  if(hex STREQUAL "")
    message(FATAL_ERROR "db/migrations/${file} is empty")
  endif()
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND arrays "const unsigned char kMigration${version}[] = {${bytes}};\n")
  string(APPEND table "    {${version}, \"${name}\", \"${sha}\", kMigration${version}, sizeof kMigration${version}},\n")
endforeach()
if(table STREQUAL "")
  message(FATAL_ERROR "${MIGRATIONS_DIR} holds no NNNN_name.sql file")
endif()
set(source "// Generated from db/migrations by db/cmake/embed_migrations.cmake. Do not edit.
#include \"embedded_migrations.hpp\"

namespace forkcast::db::detail {
namespace {
${arrays}
const EmbeddedMigration kMigrations[] = {
${table}};
}  // namespace

std::span<const EmbeddedMigration> embedded_migration_files() { return kMigrations; }

}  // namespace forkcast::db::detail
")
file(WRITE "${OUTPUT}.tmp" "${source}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
