# Runs one MpiDeadline test under mpiexec (cmake -P; ctest calls it) and passes only when the job
# ended non-zero within LIMIT_S seconds and printed the deadline's one-line "[mpi] ... did not
# complete within" message: a collective that cannot finish must abort the job, never hang it.
# Inputs: MPIEXEC, NP_FLAG, NP, BINARY, CASE (a gtest name), LIMIT_S.
string(TIMESTAMP start "%s" UTC)
execute_process(
  COMMAND ${MPIEXEC} ${NP_FLAG} ${NP} ${BINARY} --gtest_also_run_disabled_tests --gtest_filter=${CASE}
  TIMEOUT ${LIMIT_S}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(TIMESTAMP end "%s" UTC)
math(EXPR elapsed "${end} - ${start}")
message("${out}${err}")
message("[mpi_expect_abort] ${CASE} on ${NP} ranks: exit '${rc}' after ${elapsed} s")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "[mpi_expect_abort] mpiexec did not exit by itself within ${LIMIT_S} s: ${rc}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "[mpi_expect_abort] mpiexec exited 0; expected the deadline to abort the job")
endif()
if(NOT err MATCHES "\\[mpi\\] [a-z_]+ on group [^\n]* did not complete within [0-9.]+ s: a rank died or stopped\\. Hint: ")
  message(FATAL_ERROR "[mpi_expect_abort] no '[mpi] ... did not complete within' line on stderr")
endif()
