/* gpu/cublas_library.c without a device: the CUDA build's cuBLAS loads,
 * every function trainpipe calls is found in it, and a call through the
 * table reaches cuBLAS. */
#include <stdio.h>
#include <string.h>

#include <cublas_v2.h>

#include "gpu/cublas_library.h"

int main(void) {
  char err[512] = "";
  if (!cublas_library_load(err, sizeof err)) {
    printf("FAIL: %s\n", err);
    return 1;
  }
  if (!cublas_library_load(err, sizeof err)) {
    printf("FAIL: a second load: %s\n", err);
    return 1;
  }
  const char *name = cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED);
  if (!name || strcmp(name, "CUBLAS_STATUS_NOT_SUPPORTED") != 0) {
    printf("FAIL: cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED) is '%s'\n", name ? name : "(null)");
    return 1;
  }
  const char *text = cublasGetStatusString(CUBLAS_STATUS_SUCCESS);
  if (!text || !*text) {
    printf("FAIL: cublasGetStatusString(CUBLAS_STATUS_SUCCESS) is empty\n");
    return 1;
  }
  printf("PASS: cuBLAS loaded; CUBLAS_STATUS_SUCCESS reads '%s'\n", text);
  return 0;
}
