// `cleave`: the command line. Each subcommand lives in its own file.
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/cleave/commands.h"

namespace {

void PrintHelp() {
  std::fputs(
      "usage: cleave <command> [flags]\n"
      "commands:\n"
      "  make-model   write a deterministic random Mixtral checkpoint (tiny, small, seed)\n"
      "  run          generate offline from a checkpoint, streaming text to stdout\n"
      "  up           start a local cluster (router, prefill, decode) from a YAML spec\n"
      "  generate     send requests to a router; stream text, or measure load\n"
      "  plan         check, estimate or search parallel layouts (no GPU needed)\n"
      "run 'cleave <command> --help' for a command's flags\n",
      stderr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    PrintHelp();
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "make-model") return cleave::cli::MakeModelCommand(argc - 2, argv + 2);
  if (command == "run") return cleave::cli::RunCommand(argc - 2, argv + 2);
  if (command == "up") return cleave::cli::UpCommand(argc - 2, argv + 2);
  if (command == "generate") return cleave::cli::GenerateCommand(argc - 2, argv + 2);
  if (command == "plan") return cleave::cli::PlanCommand(argc - 2, argv + 2);
  std::fprintf(stderr, "cleave: unknown command '%s'\n", command.c_str());
  PrintHelp();
  return 2;
}
