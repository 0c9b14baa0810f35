// Preemption: while a StopSignals object lives, the first SIGTERM or SIGINT only records a request
// (the trainer finishes its step, writes a checkpoint and returns, so the process exits 0 and a
// rerun continues exactly); a second one ends the process at once with 128 + the signal. Exiting
// mid-write is safe: checkpoints are renamed into place only when complete.
#pragma once

namespace k2f::train {

class StopSignals {
 public:
  StopSignals();   // installs the handlers (the previous ones come back on destruction)
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal that asked to stop (SIGTERM, SIGINT), 0 when none arrived.
  static int requested();
  // Forgets a request (a new run in the same process starts clean).
  static void clear();
};

// "SIGTERM", "SIGINT" or "signal N".
const char* signal_name(int signal_number);

}  // namespace k2f::train
