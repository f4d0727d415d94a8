/*
 * What Node's fs module lacks and a faithful backup needs, as a Node-API addon (ABI-stable:
 * one build serves Node 20, 22 and 24, in the main thread and in worker threads):
 *
 *   llistxattr, lgetxattr, lsetxattr  extended attributes, never following a symlink
 *   fsetxattr                        attributes of a file being restored, on its descriptor
 *   mknod                            FIFOs and device nodes
 *   chmodNoFollow                    the mode of a FIFO or device node without following a
 *                                    symlink swapped in (O_PATH + /proc/self/fd, as glibc does)
 *   seekSparse                       lseek SEEK_DATA / SEEK_HOLE: where a sparse file's data
 *                                    and holes are, so backups do not read holes
 *   trimMemory                       malloc_trim(0) (glibc): free memory back to the system
 *
 * Paths and attribute names are byte buffers (names need not be UTF-8). Failures throw an
 * Error with `errno` (positive) and `syscall`; the TypeScript side (src/fsio/native.ts) gives
 * it Node's usual `code`. Every call is one or two system calls and runs synchronously.
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, NULL, "lifeboat_fs: bad arguments: " #call); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_value msg, error, num, sys;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

/* A buffer argument copied with a terminating NUL (paths and names go to C APIs). */
static char *cstring(napi_env env, napi_value v) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lifeboat_fs: expected a Buffer");
    return NULL;
  }
  if (memchr(data, 0, len) != NULL) {
    napi_throw_type_error(env, NULL, "lifeboat_fs: NUL byte in a path or name");
    return NULL;
  }
  char *s = malloc(len + 1);
  if (s == NULL) {
    napi_throw_error(env, NULL, "lifeboat_fs: out of memory");
    return NULL;
  }
  memcpy(s, data, len);
  s[len] = 0;
  return s;
}

static napi_value args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "lifeboat_fs: missing arguments");
    return NULL;
  }
  return argv[0];
}

/* Most lists and values fit this: one system call instead of asking for the size first. */
#define FIRST_TRY 4096

/* llistxattr(path) -> Buffer holding NUL-terminated names (a larger list: size asked first,
 * retried if the list grew in between). */
static napi_value list_xattrs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return NULL;
  char *path = cstring(env, argv[0]);
  if (!path) return NULL;
  char first[FIRST_TRY];
  ssize_t quick = llistxattr(path, first, sizeof first);
  if (quick >= 0) {
    napi_value out;
    void *dst;
    napi_create_buffer_copy(env, (size_t)quick, first, &dst, &out);
    free(path);
    return out;
  }
  if (errno != ERANGE) {
    int err = errno;
    free(path);
    return throw_errno(env, err, "llistxattr");
  }
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) {
      int err = errno;
      free(path);
      return throw_errno(env, err, "llistxattr");
    }
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    ssize_t got = llistxattr(path, buf, (size_t)size);
    if (got < 0 && errno == ERANGE) {
      free(buf);
      continue;
    }
    if (got < 0) {
      int err = errno;
      free(buf);
      free(path);
      return throw_errno(env, err, "llistxattr");
    }
    napi_value out;
    void *dst;
    napi_create_buffer_copy(env, (size_t)got, buf, &dst, &out);
    free(buf);
    free(path);
    return out;
  }
  free(path);
  return throw_errno(env, ERANGE, "llistxattr");
}

/* lgetxattr(path, name) -> Buffer, or null when the attribute went away meanwhile (ENODATA). */
static napi_value get_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv)) return NULL;
  char *path = cstring(env, argv[0]);
  if (!path) return NULL;
  char *name = cstring(env, argv[1]);
  if (!name) {
    free(path);
    return NULL;
  }
  napi_value out = NULL;
  int err = 0;
  char first[FIRST_TRY];
  ssize_t quick = lgetxattr(path, name, first, sizeof first);
  if (quick >= 0) {
    void *dst;
    napi_create_buffer_copy(env, (size_t)quick, first, &dst, &out);
    free(path);
    free(name);
    return out;
  }
  if (errno != ERANGE) err = errno;
  for (int attempt = 0; err == 0 && attempt < 8; attempt++) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) {
      err = errno;
      break;
    }
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    ssize_t got = lgetxattr(path, name, buf, (size_t)size);
    if (got < 0) {
      err = errno;
      free(buf);
      if (err == ERANGE) continue;
      break;
    }
    void *dst;
    napi_create_buffer_copy(env, (size_t)got, buf, &dst, &out);
    free(buf);
    err = 0;
    break;
  }
  free(path);
  free(name);
  if (out) return out;
  if (err == ENODATA) {
    napi_get_null(env, &out);
    return out;
  }
  return throw_errno(env, err ? err : ERANGE, "lgetxattr");
}

/* lsetxattr(path, name, value) */
static napi_value set_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv)) return NULL;
  void *value;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[2], &value, &len));
  char *path = cstring(env, argv[0]);
  if (!path) return NULL;
  char *name = cstring(env, argv[1]);
  if (!name) {
    free(path);
    return NULL;
  }
  int rc = lsetxattr(path, name, value, len, 0);
  int err = errno;
  free(path);
  free(name);
  if (rc < 0) return throw_errno(env, err, "lsetxattr");
  return NULL;
}

/* fsetxattr(fd, name, value) */
static napi_value fset_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv)) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  void *value;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[2], &value, &len));
  char *name = cstring(env, argv[1]);
  if (!name) return NULL;
  int rc = fsetxattr(fd, name, value, len, 0);
  int err = errno;
  free(name);
  if (rc < 0) return throw_errno(env, err, "fsetxattr");
  return NULL;
}

/* mknod(path, mode, rdev): mode includes the file type (S_IFIFO, S_IFCHR, S_IFBLK); rdev is a
 * BigInt (dev_t as stat reports it). */
static napi_value make_node(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv)) return NULL;
  uint32_t mode;
  CHECK(napi_get_value_uint32(env, argv[1], &mode));
  uint64_t rdev;
  bool lossless;
  CHECK(napi_get_value_bigint_uint64(env, argv[2], &rdev, &lossless));
  char *path = cstring(env, argv[0]);
  if (!path) return NULL;
  int rc = mknod(path, (mode_t)mode, (dev_t)rdev);
  int err = errno;
  free(path);
  if (rc < 0) return throw_errno(env, err, "mknod");
  return NULL;
}

/* chmod of `path` itself, failing with ELOOP if it is a symlink. */
static napi_value chmod_nofollow(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv)) return NULL;
  uint32_t mode;
  CHECK(napi_get_value_uint32(env, argv[1], &mode));
  char *path = cstring(env, argv[0]);
  if (!path) return NULL;
  int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  int err = errno;
  free(path);
  if (fd < 0) return throw_errno(env, err, "open");
  struct stat st;
  if (fstat(fd, &st) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, err, "fstat");
  }
  if (S_ISLNK(st.st_mode)) {
    close(fd);
    return throw_errno(env, ELOOP, "chmod");
  }
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int rc = chmod(proc, (mode_t)mode);
  err = errno;
  close(fd);
  if (rc < 0) return throw_errno(env, err, "chmod");
  return NULL;
}

/* lseek(fd, offset, SEEK_HOLE if `hole` else SEEK_DATA) -> the offset found, or -1 when no data
 * lies at or after `offset` (ENXIO). Offsets travel as doubles: exact up to 2^53. Callers read
 * with explicit positions, so the file offset this moves does not matter. */
static napi_value seek_sparse(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv)) return NULL;
  int32_t fd;
  double offset;
  bool hole;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_double(env, argv[1], &offset));
  CHECK(napi_get_value_bool(env, argv[2], &hole));
  off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
  if (r < 0 && errno != ENXIO) return throw_errno(env, errno, "lseek");
  napi_value out;
  CHECK(napi_create_double(env, r < 0 ? -1.0 : (double)r, &out));
  return out;
}

/* glibc keeps memory freed inside its heaps (each thread's arena included) for reuse, up to a
 * threshold it raises as large blocks are freed (scrypt's 32 MiB takes it to 64 MiB); a worker
 * that chunked a large file kept tens of MiB that way. malloc_trim gives it back. No-op
 * elsewhere. */
static napi_value trim_memory(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return NULL;
}

/* Asks the kernel to start reading a whole file into the page cache, without waiting: a worker
 * that opens a batch of small files and advises each before reading the first has the batch's
 * reads in flight together, not one at a time (a cold page cache, thousands of mails). Errors are
 * ignored: it is only advice. */
static napi_value will_need(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv)) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"listXattrs", NULL, list_xattrs, NULL, NULL, NULL, napi_default, NULL},
      {"getXattr", NULL, get_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"setXattr", NULL, set_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"fsetXattr", NULL, fset_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"mknod", NULL, make_node, NULL, NULL, NULL, napi_default, NULL},
      {"chmodNoFollow", NULL, chmod_nofollow, NULL, NULL, NULL, napi_default, NULL},
      {"seekSparse", NULL, seek_sparse, NULL, NULL, NULL, napi_default, NULL},
      {"trimMemory", NULL, trim_memory, NULL, NULL, NULL, napi_default, NULL},
      {"willNeed", NULL, will_need, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
