// The subcommands of the chuanspeed binary; each parses its own flags (CLI11) and returns the
// process exit status. User errors are thrown as cs::Error and reported by main.
#pragma once

namespace cs::cli {

int eval_main(int argc, char** argv);
int init_main(int argc, char** argv);
int synth_data_main(int argc, char** argv);
int train_main(int argc, char** argv);
int convert_main(int argc, char** argv);
int compare_main(int argc, char** argv);
int pulse_main(int argc, char** argv);
int generate_main(int argc, char** argv);
int preprocess_main(int argc, char** argv);
int plan_main(int argc, char** argv);

}  // namespace cs::cli
