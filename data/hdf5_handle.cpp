#include "data/hdf5_handle.h"

#include <pthread.h>

#include <new>

#include "base/error.h"

namespace k2f::data {
namespace {

std::recursive_mutex& hdf5_mutex() {
  // Never destroyed: fork handlers may run after static destructors.
  static std::recursive_mutex* const mutex = [] {
    auto* created = new std::recursive_mutex;
    pthread_atfork([] { hdf5_mutex().lock(); }, [] { hdf5_mutex().unlock(); },
                   // The child's only thread is not the owner the copied mutex records: start afresh.
                   [] { new (&hdf5_mutex()) std::recursive_mutex; });
    return created;
  }();
  return *mutex;
}

}  // namespace

Hdf5Lock::Hdf5Lock() : guard_(hdf5_mutex()) {}

void H5Handle::reset() {
  if (id_ < 0) return;
  const Hdf5Lock lock;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void quiet_hdf5_errors() {
  thread_local bool done = false;
  if (!done) {
    const Hdf5Lock lock;
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

H5Handle h5_check(hid_t id, const std::string& path, const std::string& what) {
  check(id >= 0, path, ": ", what);
  return H5Handle(id);
}

void h5_check_status(herr_t status, const std::string& path, const std::string& what) {
  check(status >= 0, path, ": ", what);
}

}  // namespace k2f::data
