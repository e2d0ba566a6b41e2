#include "interp/check.h"

#include <stdlib.h>
#include <string.h>

#include "interp/checker.h"
#include "interp/stages.h"
#include "interp/suggest.h"

#define SUGGEST_BUDGET ((size_t)1 << 24)

static const char *decl_kind_name(enum item_kind kind) {
  switch (kind) {
  case ITEM_MODEL: return "model";
  case ITEM_DATA: return "data set";
  case ITEM_STAGE: return "stage";
  default: return "declaration";
  }
}

static bool wanted(enum name_want want, enum item_kind kind) {
  switch (want) {
  case WANT_MODEL_OR_STAGE: return kind == ITEM_MODEL || kind == ITEM_STAGE;
  case WANT_DATA: return kind == ITEM_DATA;
  case WANT_STAGE: return kind == ITEM_STAGE;
  }
  return false;
}

static const char *want_text(enum name_want want) {
  switch (want) {
  case WANT_MODEL_OR_STAGE: return "a model or a stage";
  case WANT_DATA: return "a data set";
  case WANT_STAGE: return "a stage";
  }
  return "a declaration";
}

struct decl *check_resolve(struct checker *c, const struct ident *name, enum name_want want) {
  struct decl *d = symtab_find(&c->symbols, name->text, name->len);
  if (!d) {
    if (c->incomplete) return NULL;
    struct diag *diag = diag_emit(c->diags, E0102, name->span, "undefined name '%.*s'", (int)name->len, name->text);
    /* Each guess compares with every declaration; a file with thousands of
     * undefined names gets guesses for the first ones only. */
    struct suggest s;
    suggest_begin(&s, name->text, name->len);
    if (c->suggest_budget >= c->symbols.n) {
      c->suggest_budget -= c->symbols.n;
      for (size_t i = 0; i < c->symbols.n; i++) {
        const struct item *it = c->symbols.decls[i].item;
        if (wanted(want, it->kind)) suggest_consider(&s, it->name.text, it->name.len);
      }
    }
    size_t len;
    const char *best = suggest_result(&s, &len);
    if (best) diag_help(c->diags, diag, "did you mean '%.*s'?", (int)len, best);
    else diag_help(c->diags, diag, "declare it, or import the file that does");
    return NULL;
  }
  d->used = true;
  if (!wanted(want, d->item->kind)) {
    struct diag *diag = diag_emit(c->diags, E0104, name->span, "'%.*s' is a %s, not %s", (int)name->len, name->text,
                                  decl_kind_name(d->item->kind), want_text(want));
    diag_label(c->diags, diag, d->item->name.span, "declared as a %s here", decl_kind_name(d->item->kind));
    return NULL;
  }
  return d;
}

/* Imported files are declared first, so that a name the main file declares
 * again is reported there, where it can be changed, and not in a library. */
static void declare(struct checker *c) {
  for (size_t k = c->prog->n_files; k-- > 0;) {
    size_t f = k;
    struct item *pipeline = NULL;
    for (struct item *it = c->prog->files[f]->items; it; it = it->next) {
      if (it->kind == ITEM_PIPELINE) {
        if (pipeline) {
          struct diag *d = diag_emit(c->diags, E0014, it->span, "the pipeline is named twice");
          diag_label(c->diags, d, pipeline->span, "first named here");
        } else {
          pipeline = it;
        }
        continue;
      }
      if (it->kind != ITEM_MODEL && it->kind != ITEM_DATA && it->kind != ITEM_STAGE) continue;
      struct decl *earlier = symtab_add(&c->symbols, it);
      if (earlier) {
        struct diag *d = diag_emit(c->diags, E0101, it->name.span, "'%.*s' is declared twice", (int)it->name.len,
                                   it->name.text);
        diag_label(c->diags, d, earlier->item->name.span, "first declared here as a %s",
                   decl_kind_name(earlier->item->kind));
        diag_help(c->diags, d, "rename one of them; models, data sets and stages share one namespace");
      }
    }
  }
}

static void check_order(struct checker *c, struct item *it) {
  for (struct name_list *n = it->order; n; n = n->next) check_resolve(c, &n->name, WANT_STAGE);
}

/* judge.accuracy: a metric the stage logs, as its row of the stage table
 * says. */
static void check_metric(struct checker *c, const struct item *stage, const struct ident *metric) {
  const struct stage_row *row = decl_stage_row(stage);
  if (!row || stage_has_metric(row, metric->text, metric->len)) return;
  struct diag *d = diag_emit(c->diags, E0427, metric->span, "%s stage '%.*s' does not produce '%.*s'",
                             owner_spec(row->owner)->name, (int)stage->name.len, stage->name.text, (int)metric->len,
                             metric->text);
  diag_note(c->diags, d, "%s logs loss, val_loss%s%s", owner_spec(row->owner)->name, row->metrics[0] ? ", " : "",
            row->metrics);
  struct suggest s;
  suggest_begin(&s, metric->text, metric->len);
  suggest_consider_list(&s, "loss|val_loss");
  suggest_consider_list(&s, row->metrics);
  size_t len;
  const char *best = suggest_result(&s, &len);
  if (best) diag_help(c->diags, d, "did you mean '%.*s'?", (int)len, best);
}

/* Assertions name stage metrics (judge.accuracy); they are evaluated at run
 * time, so here only their names are resolved. The walk keeps its own
 * stack: a chain of a hundred thousand `and`s is a tree that deep. */
static void check_assert_expr(struct checker *c, struct expr *root) {
  struct expr **stack = NULL;
  size_t n = 0, cap = 0;
  stack = xgrow(stack, &cap, 1, sizeof *stack);
  stack[n++] = root;
  while (n > 0) {
    struct expr *e = stack[--n];
    switch (e->kind) {
    case EXPR_NAME:
      check_resolve(c, &e->u.name, WANT_STAGE);
      break;
    case EXPR_MEMBER:
      if (e->u.member.object->kind == EXPR_NAME) {
        struct decl *d = check_resolve(c, &e->u.member.object->u.name, WANT_STAGE);
        if (d) check_metric(c, d->item, &e->u.member.member);
        break;
      }
      stack = xgrow(stack, &cap, n + 1, sizeof *stack);
      stack[n++] = e->u.member.object;
      break;
    case EXPR_UNARY:
    case EXPR_BINARY:
      stack = xgrow(stack, &cap, n + 2, sizeof *stack);
      stack[n++] = e->u.op.rhs; /* the left operand is visited first */
      if (e->u.op.lhs) stack[n++] = e->u.op.lhs;
      break;
    case EXPR_CALL: {
      struct diag *d = diag_emit(c->diags, E0204, e->u.call.callee.span, "unknown function '%.*s' in an assertion",
                                 (int)e->u.call.callee.len, e->u.call.callee.text);
      diag_note(c->diags, d, "assertions compare stage metrics, e.g. judge.accuracy >= 0.65");
      break;
    }
    default:
      break;
    }
  }
  free(stack);
}

static void report_unused(struct checker *c) {
  if (c->incomplete) return;
  for (size_t i = 0; i < c->symbols.n; i++) {
    const struct decl *d = &c->symbols.decls[i];
    if (d->used || d->item->kind == ITEM_STAGE) continue;
    if (!program_is_main(c->prog, d->item->name.span.file)) continue;
    struct diag *diag = diag_emit(c->diags, W0103, d->item->name.span, "%s '%.*s' is never used",
                                  decl_kind_name(d->item->kind), (int)d->item->name.len, d->item->name.text);
    diag_help(c->diags, diag, "remove it, or use it in a stage");
  }
}

void check_program(struct program *prog, const struct check_options *opt) {
  struct checker c = {.prog = prog, .diags = &prog->diags, .suggest_budget = SUGGEST_BUDGET};
  key_index_init(&c.keys);
  symtab_init(&c.symbols);

  c.incomplete = prog->import_failed;
  for (size_t f = 0; f < prog->n_files; f++) c.incomplete |= prog->files[f]->syntax_errors > 0;
  declare(&c);
  for (size_t f = 0; f < prog->n_files; f++) {
    for (struct item *it = prog->files[f]->items; it; it = it->next) {
      switch (it->kind) {
      case ITEM_MODEL: check_model(&c, it); break;
      case ITEM_DATA: check_data(&c, it); break;
      case ITEM_STAGE: check_stage(&c, it); break;
      case ITEM_ORDER: check_order(&c, it); break;
      case ITEM_ASSERT: check_assert_expr(&c, it->cond); break;
      case ITEM_PIPELINE:
      case ITEM_IMPORT: break;
      }
    }
  }
  check_stages(&c);
  if (opt->data && !c.incomplete) check_data_files(&c);
  report_unused(&c);
  check_suppressions(&c);
  diag_sort(c.diags);

  symtab_free(&c.symbols);
  key_index_free(&c.keys);
}
