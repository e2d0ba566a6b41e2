/* cuBLAS and cuBLASLt are loaded when the first CUDA backend is created,
 * not when trainpipe starts: the libraries' relocations alone took 60 ms,
 * which every command, `check` and `fmt` included, paid on a CUDA build.
 * gpu/cublas_library.c defines the cuBLAS functions trainpipe calls, with
 * cuBLAS's names and types, as calls through what cublas_library_load
 * found; the CUDA emulator links its own cuBLAS instead. */
#ifndef TRAINPIPE_GPU_CUBLAS_LIBRARY_H
#define TRAINPIPE_GPU_CUBLAS_LIBRARY_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Loads the libraries and every function trainpipe calls in them; true
 * when they are there (again: a second call costs nothing), else false
 * with the library or function that is missing in ERR. */
bool cublas_library_load(char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
