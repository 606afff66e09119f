# The emulated GPU (tests/cuda_emu/device/, included by tests/CMakeLists.txt): src/backend/cuda's
# files compiled by the host compiler against an emulated CUDA runtime, cuBLASLt and CUB, so that
# the CUDA backend as a whole (host code and kernels) runs on the CPU. The op tests' and the model
# test's cuda instances run on it in every build, nvcc or not (label emulated_gpu; ctest names
# EmulatedGpu.*, and EmulatedGpu<kernels>.* for the attention tests on each CS_CUDA_ATTENTION
# choice). Each .cu is compiled through a one-line .cpp that includes it: a source file has one
# language in a directory, and the GPU build compiles the same files as CUDA.
set(CS_CUDA_STEMS cuda_backend table matmul embedding rmsnorm rope heads attention attention_tc attention_wgmma
    attention_decode swiglu cross_entropy elementwise reduce cast adamw)
set(CS_EMU_GPU_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/runtime.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/cublaslt.cpp)
foreach(stem ${CS_CUDA_STEMS})
  set(wrapper ${CMAKE_CURRENT_BINARY_DIR}/emulated_gpu/${stem}.cpp)
  file(CONFIGURE OUTPUT ${wrapper} CONTENT "#include \"backend/cuda/${stem}.cu\"\n")
  list(APPEND CS_EMU_GPU_SOURCES ${wrapper})
endforeach()
# With MPI, NCCL too: src/parallel/nccl_group.cpp over the emulated NCCL (MPI between the ranks).
if(CS_WITH_MPI)
  set(wrapper ${CMAKE_CURRENT_BINARY_DIR}/emulated_gpu/nccl_group.cpp)
  file(CONFIGURE OUTPUT ${wrapper} CONTENT "#include \"parallel/nccl_group.cpp\"\n")
  list(APPEND CS_EMU_GPU_SOURCES ${wrapper} ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/nccl.cpp)
endif()
add_library(cs_emulated_gpu OBJECT ${CS_EMU_GPU_SOURCES})
# The shim headers (<cuda_runtime.h>, <cublasLt.h>, <cub/...>) before anything else on the path.
target_include_directories(cs_emulated_gpu BEFORE PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/include
                           ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(cs_emulated_gpu PRIVATE cs_core fmt::fmt)
if(CS_WITH_MPI)
  target_link_libraries(cs_emulated_gpu PUBLIC MPI::MPI_CXX)
endif()
# As tests/cuda_emu's: nvcc's #pragma unroll is unknown here; no contraction into FMAs.
target_compile_options(cs_emulated_gpu PRIVATE -include ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/emulated_gpu.h
                       -Wno-unknown-pragmas -ffp-contract=off)

# The test files whose cuda instances run on the emulated GPU.
set(CS_EMU_GPU_TESTS backend/ops_test backend/bf16_ops_test backend/reduce_cast_test backend/arg_check_test
    backend/memory_test backend/attention_test backend/attention_bf16_test backend/attention_packed_test
    cuda/model_parity_test)
# The cuda instances, less the tests of the same bits at 1, 2 and 3 OpenMP threads (the emulated
# GPU runs every launch the same way whatever the thread count; a GPU's run-to-run bits are
# gpu_check.sh's to see).
set(filter "*/cuda*:Cuda*:-*SameBitsForOneTwoAndThreeThreads*")
foreach(t ${CS_EMU_GPU_TESTS})
  string(REPLACE "/" "_" tname "emulated_gpu_${t}")
  add_executable(${tname} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cpp)
  target_include_directories(${tname} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  # The emulated GPU's objects come first on the link line and define the whole CUDA backend
  # (cs::make_cuda_backend, cs::cuda_device_count, cs::cuda::*), so the linker takes none of the
  # real backend's (or the stub's) objects from cs_backend's archive.
  target_link_libraries(${tname} PRIVATE cs_emulated_gpu ${CS_TEST_LIBS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${tname} PRIVATE CS_WITH_CUDA
    CS_SOURCE_DIR="${CMAKE_SOURCE_DIR}" CS_BINARY="${CMAKE_BINARY_DIR}/chuanspeed")
  gtest_discover_tests(${tname} TEST_PREFIX "EmulatedGpu." TEST_FILTER "${filter}"
                       PROPERTIES LABELS emulated_gpu DISCOVERY_TIMEOUT 60)
  if(t MATCHES "^backend/attention")
    # The default kernels above; each other choice of kernels too (wgmma: the emulated GPU is an H100).
    foreach(kernels wgmma wmma portable)
      gtest_discover_tests(${tname} TEST_PREFIX "EmulatedGpu_${kernels}." TEST_FILTER "${filter}"
                           PROPERTIES LABELS emulated_gpu ENVIRONMENT CS_CUDA_ATTENTION=${kernels}
                           DISCOVERY_TIMEOUT 60)
    endforeach()
  endif()
endforeach()

# chuanspeed itself on the emulated GPU, and gpu_check.sh's loss-curve step in miniature with it.
add_executable(emulated_gpu_chuanspeed ${CMAKE_SOURCE_DIR}/src/cli/main.cpp)
target_link_libraries(emulated_gpu_chuanspeed PRIVATE cs_emulated_gpu cs_cli_lib)
target_compile_definitions(emulated_gpu_chuanspeed PRIVATE CS_VERSION="${PROJECT_VERSION}")
add_test(NAME EmulatedGpu.TrainingCurvesMatchTheCpu
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/train_curves.sh precisions
                 $<TARGET_FILE:emulated_gpu_chuanspeed> ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/emulated_gpu_train)
set_tests_properties(EmulatedGpu.TrainingCurvesMatchTheCpu PROPERTIES LABELS emulated_gpu TIMEOUT 900)
# The parallel layouts on the emulated GPUs of two ranks, through the NCCL group.
if(CS_WITH_MPI)
  add_test(NAME EmulatedGpu.ParallelLayoutsTrainAsOneProcess
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu/device/train_curves.sh layouts
                   $<TARGET_FILE:emulated_gpu_chuanspeed> ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/emulated_gpu_layouts)
  set_tests_properties(EmulatedGpu.ParallelLayoutsTrainAsOneProcess PROPERTIES LABELS emulated_gpu TIMEOUT 900
                       RESOURCE_LOCK mpi)
  if(CS_SANITIZE_MPI_ENV)  # Open MPI's start-up allocations, as for the other tests that start mpirun
    set_tests_properties(EmulatedGpu.ParallelLayoutsTrainAsOneProcess PROPERTIES ENVIRONMENT ${CS_SANITIZE_MPI_ENV})
  endif()
endif()

# gpu_bench (bench/gpu_check.sh's benchmark) on the emulated GPU: a tiny model through the timed
# steps, the micro-batches and the per-op profile, in bf16 with RoPE and fp16 with ALiBi. Its
# figures mean nothing here; that it runs and prints them whole is what is checked.
if(CS_BUILD_BENCH AND EXISTS ${CMAKE_SOURCE_DIR}/bench/gpu_bench.cpp)
  add_executable(emulated_gpu_gpu_bench ${CMAKE_SOURCE_DIR}/bench/gpu_bench.cpp ${CMAKE_SOURCE_DIR}/bench/op_profile.cpp)
  target_include_directories(emulated_gpu_gpu_bench PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(emulated_gpu_gpu_bench PRIVATE cs_emulated_gpu cs_model cs_optim cs_parallel cs_backend cs_core
                        CLI11::CLI11 fmt::fmt)
  foreach(run "bf16;rope" "fp16;alibi")
    list(GET run 0 precision)
    list(GET run 1 position)
    add_test(NAME EmulatedGpu.GpuBenchRuns_${precision}_${position}
             COMMAND bash -c "out=$($<TARGET_FILE:emulated_gpu_gpu_bench> --device cuda --hidden 64 --heads 2 --ffn 96 \
--vocab 256 --layers 2 --seq 64 --micro-batch 2 --micro-batches 2 --iters 1 --profile 1 --precision ${precision} \
--position ${position} --label emulated 2>&1) && echo \"$out\" && echo \"$out\" | grep -q '\"tokens_per_s\"' && \
echo \"$out\" | grep -qi 'attention'")
    set_tests_properties(EmulatedGpu.GpuBenchRuns_${precision}_${position} PROPERTIES LABELS emulated_gpu TIMEOUT 300)
  endforeach()
endif()
