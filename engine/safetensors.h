/* safetensors.h — read (mmap, fully validated) and write safetensors checkpoints, single or sharded.
 *
 * Reader invariants: after lmb_st_open* succeeds every tensor's [begin,end) lies inside its file's data
 * section, no two tensors overlap, and nbytes == numel * dtype size; a bad file never crashes the reader,
 * it yields an error naming the file and the field.  Tensor views stay valid until lmb_st_close.
 * safetensors does not promise that a tensor's bytes are aligned to its element size (files written by
 * Hugging Face are, since it orders tensors by alignment); code that casts t->data must not assume it.
 */
#ifndef LMB_SAFETENSORS_H
#define LMB_SAFETENSORS_H

#include <stddef.h>

#include "error.h"
#include "tensor.h"

typedef struct lmb_safetensors lmb_safetensors;

/* One .safetensors file. */
int lmb_st_open_file(const char *path, lmb_safetensors **out, lmb_error *err);
/* A model folder: model.safetensors.index.json (sharded) if present, else model.safetensors, else every
 * *.safetensors file in the folder (name order).  Tensor names must be unique across shards.  With an index,
 * every weight_map entry must be found in the shard it names; tensors a shard holds beyond its weight_map
 * entries are kept (weight binding reports them as unexpected). */
int lmb_st_open_dir(const char *dir, lmb_safetensors **out, lmb_error *err);
void lmb_st_close(lmb_safetensors *st);

int lmb_st_count(const lmb_safetensors *st);
const lmb_tensor *lmb_st_at(const lmb_safetensors *st, int i);
const lmb_tensor *lmb_st_find(const lmb_safetensors *st, const char *name); /* NULL if absent */
/* Index (for lmb_st_at) of the tensor called name, -1 if absent. */
int lmb_st_find_index(const lmb_safetensors *st, const char *name);
/* "__metadata__" string value for key, NULL if absent (first file for sharded sets). */
const char *lmb_st_metadata(const lmb_safetensors *st, const char *key);
/* Path of the file holding tensor i (as opened: DIR/NAME), NULL if i is out of range. */
const char *lmb_st_file_of(const lmb_safetensors *st, int i);

/* Writer: collect tensors (data is borrowed until lmb_st_writer_save), then save atomically.  Tensors are
 * stored in insertion order, back to back; the header is padded with spaces to a multiple of 8 bytes, so a
 * tensor is aligned to its element size when the bytes before it are a multiple of it (add wider dtypes
 * first to be sure).  Names and metadata must be valid UTF-8.  lmb_st_writer_new returns NULL when out of
 * memory.  The whole file is assembled in memory before the atomic write. */
typedef struct lmb_st_writer lmb_st_writer;
lmb_st_writer *lmb_st_writer_new(void);
int lmb_st_writer_add(lmb_st_writer *w, const char *name, lmb_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, lmb_error *err);
int lmb_st_writer_set_metadata(lmb_st_writer *w, const char *key, const char *value, lmb_error *err);
int lmb_st_writer_save(lmb_st_writer *w, const char *path, lmb_error *err);
void lmb_st_writer_free(lmb_st_writer *w);

#endif
