# cleave_test(NAME <name> SOURCES ... LIBS ... LABELS unit|integration [TIMEOUT s])
# One GoogleTest binary per call, registered with ctest under its labels.
enable_testing()
function(cleave_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "CLEAVE_SOURCE_DIR=${PROJECT_SOURCE_DIR};CLEAVE_BINARY_DIR=${PROJECT_BINARY_DIR};OPENBLAS_NUM_THREADS=1")
endfunction()
