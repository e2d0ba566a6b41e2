/* The emulator's CUDA runtime API: the calls the CUDA backend and its
 * tests make, over one device whose memory is the host's.
 *
 * The device's memory is kept stricter than a GPU keeps it, so that the
 * tests find what a GPU would let pass or punish at random:
 * - each allocation ends 256-byte aligned against a page that faults, so
 *   a kernel that runs past it stops with its name and thread;
 * - it starts with every byte 0xff, NaN in floats and bf16, so a read of
 *   what nothing wrote shows;
 * - a kernel argument or a copy that names host memory as the device's,
 *   or runs past the end of an allocation, is an error.
 *
 * The device has 80 GiB, or CUDA_EMULATOR_MEMORY_MIB; cudaMalloc fails
 * past that, so that what searches for the batch that fits can be run. */
#include <cuda_profiler_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <string>

#include "tests/gpu/emulator/cuda_emulator.h"
#include "tests/gpu/emulator/emulator.h"

namespace {

struct allocation {
  size_t bytes;
  unsigned char *mapping; /* and its length, for munmap */
  size_t mapped;
};

/* The one device's state. */
struct device {
  std::map<uintptr_t, allocation> memory; /* by start */
  std::map<std::string, size_t> shared_limit;
  size_t allocated; /* bytes, as asked for */
  cudaError_t last_error;
  int streams;
};
device the;

const char *const EMULATED_NAME = "CUDA emulator (CPU)";

size_t device_bytes(void) {
  const char *mib = getenv("CUDA_EMULATOR_MEMORY_MIB");
  if (!mib || !*mib) return (size_t)80 << 30;
  char *end;
  unsigned long long n = strtoull(mib, &end, 10);
  if (*end || n == 0) {
    fprintf(stderr, "cuda emulator: CUDA_EMULATOR_MEMORY_MIB is '%s', not a number of MiB\n", mib);
    exit(2);
  }
  return (size_t)n << 20;
}

/* the allocation holding [P, P + BYTES), or null */
const allocation *allocation_of(const void *p, size_t bytes, uintptr_t *start) {
  uintptr_t a = (uintptr_t)p;
  auto it = the.memory.upper_bound(a);
  if (it == the.memory.begin()) return NULL;
  --it;
  if (a + bytes > it->first + it->second.bytes || a + bytes < a) return NULL;
  *start = it->first;
  return &it->second;
}

bool on_device(const void *p, size_t bytes) {
  uintptr_t start;
  return allocation_of(p, bytes, &start) != NULL;
}

bool touches_device(const void *p) {
  uintptr_t start;
  return allocation_of(p, 0, &start) != NULL;
}

cudaError_t fail(cudaError_t err, const char *call, const char *why) {
  fprintf(stderr, "cuda emulator: %s: %s\n", call, why);
  the.last_error = err;
  return err;
}

/* the directions a copy of KIND may take */
cudaError_t check_copy(const char *call, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  bool dst_device = on_device(dst, bytes), src_device = on_device(src, bytes);
  bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault) return cudaSuccess;
  if (want_dst && !dst_device)
    return fail(cudaErrorInvalidValue, call, "the destination is not that much device memory");
  if (want_src && !src_device) return fail(cudaErrorInvalidValue, call, "the source is not that much device memory");
  if (!want_dst && touches_device(dst)) return fail(cudaErrorInvalidValue, call, "the destination is device memory");
  if (!want_src && touches_device(src)) return fail(cudaErrorInvalidValue, call, "the source is device memory");
  return cudaSuccess;
}

}  // namespace

size_t emu_shared_limit(const char *name) {
  auto it = the.shared_limit.find(name);
  return it == the.shared_limit.end() ? (size_t)EMU_SHARED_DEFAULT : it->second;
}

void emu_set_last_error(cudaError_t err) { the.last_error = err; }

void emu_check_device_pointer(const void *p, const char *kernel, int index) {
  if (p && !touches_device(p)) emu_fail("argument %d of %s, %p, is not device memory", index + 1, kernel, p);
}

void emu_memory_save(emu_memory_image *image, const void *const *pointers, size_t count) {
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    uintptr_t start;
    const allocation *a = pointers[i] ? allocation_of(pointers[i], 0, &start) : NULL;
    bool seen = false;
    for (size_t j = 0; j < n && a; j++) seen = seen || (*image)[j].first == (const void *)start;
    if (!a || seen) continue;
    if (n == image->size()) image->emplace_back();
    (*image)[n].first = (const void *)start;
    (*image)[n].second.assign((const unsigned char *)start, (const unsigned char *)start + a->bytes);
    n++;
  }
  image->resize(n);
}

void emu_memory_restore(const emu_memory_image &image) {
  for (const auto &a : image) memcpy((void *)a.first, a.second.data(), a.second.size());
}

bool emu_memory_differs(const emu_memory_image &image, const void **allocation, size_t *offset) {
  for (const auto &a : image) {
    const unsigned char *p = (const unsigned char *)a.first;
    if (memcmp(p, a.second.data(), a.second.size()) == 0) continue;
    size_t i = 0;
    while (p[i] == a.second[i]) i++;
    *allocation = a.first, *offset = i;
    return true;
  }
  return false;
}

cudaError_t emu_set_attribute(const char *name, cudaFuncAttribute attribute, int value) {
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute", "only the dynamic shared memory limit is emulated");
  if (value < 0 || value > EMU_SHARED_OPTIN)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute", "more dynamic shared memory than a block may have");
  the.shared_limit[name] = (size_t)value;
  return cudaSuccess;
}

extern "C" {

cudaError_t cudaMalloc(void **p, size_t bytes) {
  if (!p) return fail(cudaErrorInvalidValue, "cudaMalloc", "no pointer to set");
  if (bytes > device_bytes() - the.allocated) return the.last_error = cudaErrorMemoryAllocation;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t aligned = (bytes + 255) / 256 * 256, body = (aligned + page - 1) / page * page;
  size_t mapped = body + 2 * page;
  unsigned char *m = (unsigned char *)mmap(NULL, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return the.last_error = cudaErrorMemoryAllocation;
  if (body && mprotect(m + page, body, PROT_READ | PROT_WRITE) != 0) {
    munmap(m, mapped);
    return the.last_error = cudaErrorMemoryAllocation;
  }
  unsigned char *start = m + page + body - aligned;
  memset(start, 0xff, aligned);
  the.memory[(uintptr_t)start] = {bytes, m, mapped};
  the.allocated += bytes;
  *p = start;
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  auto it = the.memory.find((uintptr_t)p);
  if (it == the.memory.end()) return fail(cudaErrorInvalidValue, "cudaFree", "not an allocation's start");
  munmap(it->second.mapping, it->second.mapped);
  the.allocated -= it->second.bytes;
  the.memory.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  cudaError_t err = check_copy("cudaMemcpy", dst, src, bytes, kind);
  if (err == cudaSuccess && bytes) memmove(dst, src, bytes);
  return err;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  cudaError_t err = check_copy("cudaMemcpyAsync", dst, src, bytes, kind);
  if (err == cudaSuccess && bytes) memmove(dst, src, bytes);
  return err;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
  if (!on_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemset", "not that much device memory");
  memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }

cudaError_t cudaGetLastError(void) {
  cudaError_t err = the.last_error;
  the.last_error = cudaSuccess;
  return err;
}

cudaError_t cudaPeekAtLastError(void) { return the.last_error; }

const char *cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    default:
      return "cudaErrorUnknown";
  }
}

const char *cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    default:
      return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int *count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "cudaSetDevice", "one device only");
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties", "one device only");
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "%s", EMULATED_NAME);
  prop->totalGlobalMem = device_bytes();
  prop->sharedMemPerBlock = EMU_SHARED_DEFAULT;
  prop->sharedMemPerBlockOptin = EMU_SHARED_OPTIN;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = EMU_MAX_THREADS;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = EMU_MAX_THREADS;
  prop->maxThreadsDim[2] = EMU_MAX_BLOCK_Z;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = prop->maxGridSize[2] = EMU_MAX_GRID_YZ;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  *total = device_bytes();
  *free_bytes = *total - the.allocated;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

/* nothing to profile: the calls succeed, as they do without a profiler */
cudaError_t cudaProfilerStart(void) { return cudaSuccess; }
cudaError_t cudaProfilerStop(void) { return cudaSuccess; }

/* Launches run to completion as they are made, so a stream is a name. */
cudaError_t cudaStreamCreate(cudaStream_t *s) {
  *s = (cudaStream_t)(uintptr_t)(++the.streams);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

}  // extern "C"
