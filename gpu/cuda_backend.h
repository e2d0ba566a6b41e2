/* The CUDA backend: runtime/backend.h's interface on one GPU, in fp32,
 * composed as the CPU backend is (runtime/cpu_backend.c) from the kernels
 * of gpu/kernels.h and cuBLAS matmuls. */
#ifndef TRAINPIPE_GPU_CUDA_BACKEND_H
#define TRAINPIPE_GPU_CUDA_BACKEND_H

#include <stddef.h>

/* runtime/ is C: its declarations get C linkage in a .cu file too */
#ifdef __cplusplus
extern "C" {
#endif

#include "runtime/backend.h"

/* NULL with a reason in ERR: no device, a bad configuration, not enough
 * device memory, or generation rows (not available on this backend yet). */
struct backend *cuda_backend_create(const struct backend_spec *spec, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
