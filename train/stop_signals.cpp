#include "train/stop_signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace k2f::train {
namespace {

std::atomic<int> g_requested{0};
struct sigaction g_previous_term, g_previous_int;

void on_signal(int signal_number) {
  int expected = 0;
  if (!g_requested.compare_exchange_strong(expected, signal_number)) _exit(128 + signal_number);
}

}  // namespace

StopSignals::StopSignals() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, &g_previous_term);
  sigaction(SIGINT, &action, &g_previous_int);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &g_previous_term, nullptr);
  sigaction(SIGINT, &g_previous_int, nullptr);
}

int StopSignals::requested() { return g_requested.load(); }
void StopSignals::clear() { g_requested.store(0); }

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}

}  // namespace k2f::train
