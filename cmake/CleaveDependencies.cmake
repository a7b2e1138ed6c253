# Finds every dependency from Debian 12 packages (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(CLEAVE_PROTOC protoc REQUIRED)
find_program(CLEAVE_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(Gloo CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG REQUIRED)

pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_library(CLEAVE_SENTENCEPIECE_TRAIN_LIB sentencepiece_train REQUIRED)

find_package(Python3 COMPONENTS Interpreter REQUIRED)
