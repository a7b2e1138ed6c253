// Subcommand entry points. Each returns the process exit code: 0 on success,
// 1 on a runtime failure, 2 on bad arguments.
#ifndef CLEAVE_TOOLS_CLEAVE_COMMANDS_H_
#define CLEAVE_TOOLS_CLEAVE_COMMANDS_H_

namespace cleave::cli {

inline constexpr int kExitUsage = 2;
inline constexpr int kExitFailure = 1;

int MakeModelCommand(int argc, char** argv);
int RunCommand(int argc, char** argv);
int UpCommand(int argc, char** argv);
int GenerateCommand(int argc, char** argv);
int PlanCommand(int argc, char** argv);

}  // namespace cleave::cli

#endif  // CLEAVE_TOOLS_CLEAVE_COMMANDS_H_
