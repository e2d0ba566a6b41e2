/* Between the emulator's two halves: threads.cc runs the kernels,
 * runtime.cc is the CUDA runtime API and the device's memory. The device
 * is one per process, as a GPU is, so both keep process-wide state. */
#ifndef TRAINPIPE_TESTS_GPU_EMULATOR_H
#define TRAINPIPE_TESTS_GPU_EMULATOR_H

#include <cuda_runtime.h>
#include <stddef.h>

#include <utility>
#include <vector>

/* the most dynamic shared memory a launch of the kernel NAME may ask for:
 * 48 KiB, or what cudaFuncSetAttribute raised it to */
size_t emu_shared_limit(const char *name);
/* what cudaGetLastError returns next, unless a later error replaces it */
void emu_set_last_error(cudaError_t err);

/* device memory, allocation by allocation: its start and bytes */
typedef std::vector<std::pair<const void *, std::vector<unsigned char>>> emu_memory_image;
/* the allocations that the COUNT POINTERS point into (null ones aside),
 * into IMAGE, whose buffers are reused */
void emu_memory_save(emu_memory_image *image, const void *const *pointers, size_t count);
void emu_memory_restore(const emu_memory_image &image);
/* whether device memory differs from IMAGE, and if so the first
 * allocation that does and the offset of its first different byte */
bool emu_memory_differs(const emu_memory_image &image, const void **allocation, size_t *offset);

/* the device's limits, which cudaGetDeviceProperties reports and the
 * launches enforce: an H100's */
enum {
  EMU_MAX_THREADS = 1024,
  EMU_MAX_BLOCK_Z = 64,
  EMU_MAX_GRID_YZ = 65535,
  EMU_SHARED_DEFAULT = 48 << 10,
  EMU_SHARED_OPTIN = 227 << 10,
};

#endif
