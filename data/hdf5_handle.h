// Small RAII layer over the HDF5 C API: one owning handle type, HDF5's own error printing
// silenced (it is per thread in a thread-safe build, so every entry point calls
// quiet_hdf5_errors()), failures turned into k2f::Error naming the file and the object, and one
// lock around libhdf5.
#pragma once

#include <hdf5.h>

#include <mutex>
#include <string>

namespace k2f::data {

// Debian's libhdf5 is the serial build, not safe to call from two threads at once, and a loader's
// prefetch thread reads while the main thread may open or write another store. Every sequence of
// libhdf5 calls holds this lock (recursive: helpers nest). It is also held across fork() (through
// pthread_atfork), so a child process never starts with libhdf5 caught mid-call by another thread:
// the token store's probe child once hung that way.
class Hdf5Lock {
 public:
  Hdf5Lock();
  Hdf5Lock(const Hdf5Lock&) = delete;
  Hdf5Lock& operator=(const Hdf5Lock&) = delete;

 private:
  std::lock_guard<std::recursive_mutex> guard_;
};

class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership (for closes whose status must be checked).
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Turns off HDF5's automatic error stack printing for the calling thread.
void quiet_hdf5_errors();

// Throws "<path>: <what>" unless `id` is a valid handle; returns it owned.
H5Handle h5_check(hid_t id, const std::string& path, const std::string& what);
// Throws "<path>: <what>" when an HDF5 status is negative.
void h5_check_status(herr_t status, const std::string& path, const std::string& what);

}  // namespace k2f::data
