#include <stdbool.h>
#include <stdlib.h>

/* A ring buffer of ints: push at the tail, pop at the head. */
struct queue {
  int *items;
  size_t cap, head, len;
};

bool queue_init(struct queue *q, size_t cap) {
  q->items = malloc(cap * sizeof *q->items);
  q->cap = cap;
  q->head = q->len = 0;
  return q->items != NULL;
}

bool queue_push(struct queue *q, int x) {
  if (q->len == q->cap)
    return false;
  q->items[(q->head + q->len) % q->cap] = x;
  q->len++;
  return true;
}

bool queue_pop(struct queue *q, int *out) {
  if (q->len == 0)
    return false;
  *out = q->items[q->head];
  q->head = (q->head + 1) % q->cap;
  q->len--;
  return true;
}

void queue_free(struct queue *q) {
  free(q->items);
  q->items = NULL;
  q->cap = q->head = q->len = 0;
}
