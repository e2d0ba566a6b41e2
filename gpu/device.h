/* What CUDA device this build can use. The training backend (a later part
 * of gpu/) stands behind runtime/backend.h; this file only answers whether a
 * device is there and what it is, for `trainpipe version` and for tests
 * that skip without one. */
#ifndef TRAINPIPE_GPU_DEVICE_H
#define TRAINPIPE_GPU_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable devices; 0 when there is none or no driver. */
int cuda_device_count(void);
/* "1 device: NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)" or why there is none. */
void cuda_describe(char *buf, size_t size);
/* Adds two vectors of n floats on device 0 and copies the sum back; returns
 * 0 on success or the CUDA error code. */
int cuda_vector_add(const float *a, const float *b, float *sum, int n);

#ifdef __cplusplus
}
#endif

#endif
