/* SPDX-License-Identifier: MIT
 *
 * pg_insert.c: the PostgreSQL peer of bench/compare.
 *
 * Table: ev(seq bigint identity primary key, body bytea). Every connection
 * sets synchronous_commit = on, so a COMMIT returns only once its WAL is
 * flushed to disk (fsync on, the server's default).
 *
 *   sync    one connection; INSERT (prepared, binary) in its own
 *           transaction, wait for the commit, repeat
 *   pipe    --clients connections in libpq pipeline mode, each keeping
 *           --window rows in flight, --batch rows per transaction: --batch 1
 *           is one row per transaction (each INSERT followed by a Sync, which
 *           commits it); --batch 128 is how a client batches, 128 INSERTs
 *           then one Sync (one commit). A row counts as acknowledged when the
 *           Sync that commits it is answered, never at its INSERT's reply.
 *   replay  COPY (SELECT seq, body FROM ev ORDER BY seq) TO STDOUT in binary
 *           to one client, counting rows
 *
 * --target is a libpq conninfo string.
 */
#include "common.h"

#include <libpq-fe.h>

static const char *g_conninfo;

static void quiet(void *arg, const char *msg)
{
  (void)arg;
  (void)msg; /* "relation already exists, skipping" and the like */
}

static PGconn *connect_pg(void)
{
  PGconn *pc = PQconnectdb(g_conninfo);
  if (PQstatus(pc) != CONNECTION_OK)
    die("pg_insert: connect: %s", PQerrorMessage(pc));
  PGresult *r = PQexec(pc, "SET synchronous_commit = on");
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    die("pg_insert: %s", PQerrorMessage(pc));
  PQclear(r);
  r = PQprepare(pc, "ins", "INSERT INTO ev(body) VALUES ($1)", 1, NULL);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    die("pg_insert: prepare: %s", PQerrorMessage(pc));
  PQclear(r);
  return pc;
}

static void *setup(bclient_t *c)
{
  (void)c;
  return connect_pg();
}

static void *client_sync(void *arg)
{
  bclient_t *c = arg;
  PGconn *pc = c->user;
  char *ev = malloc((size_t)c->o->size);
  const char *vals[1] = {ev};
  int lens[1] = {c->o->size}, fmts[1] = {1};
  bc_start(c);
  while (bc_may_send(c)) {
    long n = c->sent;
    make_payload(ev, c->o, c->index, n);
    bc_sent(c);
    PGresult *r = PQexecPrepared(pc, "ins", 1, vals, lens, fmts, 0);
    int64_t now = mono_ns();
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
      bc_acked_n(c, n, now);
    else
      bc_fail(c, "INSERT: %s", PQerrorMessage(pc));
    PQclear(r);
    if (PQstatus(pc) != CONNECTION_OK)
      break;
  }
  bc_finish(c);
  free(ev);
  PQfinish(pc);
  return NULL;
}

/* Reads the results of the next transaction in the pipeline, up to and
 * including its Sync; acks (or fails) its rows. False when the connection
 * broke. */
static bool read_tx(bclient_t *c, PGconn *pc, long *done, long rows)
{
  bool failed = false;
  long nulls = 0; /* one NULL ends each INSERT's results: at most rows of them */
  for (;;) {
    PGresult *r = PQgetResult(pc);
    if (!r) {
      if (PQstatus(pc) != CONNECTION_OK || ++nulls > rows + 1) {
        bc_fail(c, "connection: %s", PQerrorMessage(pc));
        return false;
      }
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    if (st != PGRES_COMMAND_OK && !failed) {
      failed = true;
      bc_fail(c, "INSERT: %s", st == PGRES_PIPELINE_ABORTED ? "aborted" : PQresultErrorMessage(r));
    }
    PQclear(r);
  }
  int64_t now = mono_ns();
  for (long i = 0; i < rows; i++, (*done)++) {
    if (failed)
      c->errors += i > 0; /* bc_fail counted the first */
    else
      bc_acked_n(c, *done, now);
  }
  return true;
}

static void *client_pipe(void *arg)
{
  bclient_t *c = arg;
  PGconn *pc = c->user;
  const bopts_t *o = c->o;
  char *ev = malloc((size_t)o->size);
  const char *vals[1] = {ev};
  int lens[1] = {o->size}, fmts[1] = {1};
  long done = 0;                                 /* rows whose commit was answered */
  long *txq = calloc((size_t)o->window + 1, sizeof *txq); /* rows per open tx, FIFO */
  int qh = 0, qt = 0, qn = o->window + 1;
  if (!PQenterPipelineMode(pc))
    bc_fail(c, "pipeline mode: %s", PQerrorMessage(pc));
  bc_start(c);
  for (;;) {
    /* Fill the window with whole transactions of up to --batch rows. */
    while (c->sent - done < o->window && bc_may_send(c)) {
      long rows = 0;
      while (rows < o->batch && c->sent - done < o->window && bc_may_send(c)) {
        make_payload(ev, o, c->index, c->sent);
        if (!PQsendQueryPrepared(pc, "ins", 1, vals, lens, fmts, 0)) {
          bc_fail(c, "send: %s", PQerrorMessage(pc));
          break;
        }
        bc_sent(c);
        rows++;
      }
      if (rows == 0 || !PQpipelineSync(pc))
        break;
      txq[qt] = rows;
      qt = (qt + 1) % qn;
    }
    if (PQflush(pc) != 0) {
      bc_fail(c, "flush: %s", PQerrorMessage(pc));
      break;
    }
    if (qh == qt)
      break; /* nothing in flight and nothing more to send */
    long rows = txq[qh];
    qh = (qh + 1) % qn;
    if (!read_tx(c, pc, &done, rows))
      break;
  }
  bc_finish(c);
  free(txq);
  free(ev);
  PQfinish(pc);
  return NULL;
}

static int replay(const bopts_t *o)
{
  PGconn *pc = PQconnectdb(g_conninfo);
  if (PQstatus(pc) != CONNECTION_OK)
    die("pg_insert: connect: %s", PQerrorMessage(pc));
  PGresult *r = PQexec(pc, "SELECT count(*) FROM ev");
  long want = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  double cpu0 = self_cpu_s();
  int64_t t0 = mono_ns(), stop = t0 + (int64_t)(o->max_seconds * 1e9);
  r = PQexec(pc, "COPY (SELECT seq, body FROM ev ORDER BY seq) TO STDOUT (FORMAT binary)");
  if (PQresultStatus(r) != PGRES_COPY_OUT)
    die("pg_insert: COPY: %s", PQerrorMessage(pc));
  PQclear(r);
  long got = 0;
  char *buf = NULL;
  int n;
  /* One CopyData per row; the binary trailer is a lone 2-byte message. The
   * loop ends with the COPY (bounded by the table) or at --max-seconds. */
  while ((n = PQgetCopyData(pc, &buf, 0)) > 0) {
    if (n != 2)
      got++;
    PQfreemem(buf);
    if ((got & 0xfff) == 0 && mono_ns() > stop) {
      fprintf(stderr, "pg_insert: replay stopped at --max-seconds\n");
      break;
    }
  }
  double secs = (double)(mono_ns() - t0) / 1e9;
  replay_report(got, secs, cpu0);
  if (o->hold_ms > 0)
    sleep_ms(o->hold_ms); /* so compare can read the backend's CPU time */
  PQfinish(pc);
  return got == want ? 0 : 1;
}

int main(int argc, char **argv)
{
  bopts_t o = BOPTS_DEFAULTS;
  bopts_parse(&o, argc, argv,
              "  --target CONNINFO   libpq connection string\n"
              "  --batch B           pipe mode: rows per transaction (default 1)\n");
  g_conninfo = o.target;
  if (is_mode(&o, "replay"))
    return replay(&o);
  PGconn *pc = PQconnectdb(g_conninfo);
  if (PQstatus(pc) != CONNECTION_OK)
    die("pg_insert: connect: %s", PQerrorMessage(pc));
  PQsetNoticeProcessor(pc, quiet, NULL);
  PGresult *r = PQexec(pc, "CREATE TABLE IF NOT EXISTS ev (seq bigint GENERATED ALWAYS AS "
                           "IDENTITY PRIMARY KEY, body bytea NOT NULL)");
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    die("pg_insert: create table: %s", PQerrorMessage(pc));
  PQclear(r);
  PQfinish(pc);
  long bad = run_clients(&o, is_mode(&o, "sync") ? client_sync : client_pipe, setup);
  return bad == 0 ? 0 : 1;
}
