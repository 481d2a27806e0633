/*
 * operadora.audiosocket._native: the AudioSocket hot path in C.
 *
 * One I/O thread per Engine, never holding the GIL, owns the connections' sockets once the
 * Python side has accepted them: it reads, splits the byte stream into AudioSocket frames,
 * and writes every call's paced frames (one per 20 ms, in 1 ms slots on the absolute
 * monotonic grid, each call's slot a few ms after its inbound frames arrive, as
 * operadora.audiosocket.pacing.Pacer does). Python keeps every decision that is not per
 * frame: what a call is (UUID, handler, log line), protocol errors (frames other than valid
 * audio are handed over raw and parsed by operadora.audiosocket.protocol), resampling agent
 * audio, ending a connection.
 *
 * Python drains events (audio, raw frames, end of stream, errors) from a queue, woken by an
 * eventfd; it queues agent audio with play(). One mutex guards everything the two threads
 * share; the I/O thread holds it for a few sockets at a time, Python only for a copy in or
 * out. Linux only (epoll, eventfd).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER 3
#define SLOTS 20
#define BUCKETS 1000 /* 0..100 ms in 0.1 ms steps, then one overflow bucket */
#define READ_CHUNK 65536
#define MAX_FRAME 15360 /* 40 ms at 192 kHz */
#define EV_AUDIO 1
#define EV_RAW 2
#define EV_EOF 3
#define EV_LOST 4
#define EV_STALLED 5
#define EV_LOW 6
#define KEY_WAKE 1
#define ID_BASE 16
#define GROUP 8 /* sockets handled per hold of the lock */ /* connection ids start above the two keys */

enum { FREE = 0, OPEN, DEAD, CLOSING };

typedef struct {
    uint8_t *data;
    size_t head, len, cap; /* bytes [head, head + len) */
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->head + b->len + more <= b->cap) return 0;
    if (b->head) {
        memmove(b->data, b->data + b->head, b->len);
        b->head = 0;
        if (b->len + more <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more) cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_append(Buf *b, const uint8_t *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->head + b->len, src, n);
    b->len += n;
    return 0;
}

static void buf_consume(Buf *b, size_t n) {
    b->head += n;
    b->len -= n;
    if (!b->len) b->head = 0;
}

static void buf_free(Buf *b) {
    free(b->data);
    memset(b, 0, sizeof(*b));
}

typedef struct {
    int type;
    uint64_t id;
    int value; /* the rate of an audio frame, the errno of a lost connection */
    double t;
    size_t off, len;
} Event;

typedef struct {
    Event *items;
    size_t count, cap;
    Buf arena;
} Queue;

typedef struct {
    uint64_t id;
    int state, fd;
    int pacing, reading, stop_parsing, want_out;
    double connected_at;
    Buf in, playback, out;
    /* the line */
    int rate, rate_known, rate_hold, frame_bytes;
    uint8_t header[HEADER];
    uint64_t played_bytes;
    int low_armed, stall_reported;
    int write_paused;
    double paused_since, closing_since;
    /* pacing */
    int64_t next_tick;
    int target;
    int has_phase;
    double phase, last_arrival;
    /* statistics */
    uint64_t frames_in, frames_out, audio_frames_out, late, skipped, dropped;
    uint32_t hist[BUCKETS + 1];
} Conn;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_t thread;
    int thread_started, running;
    int epfd, wake_fd, notify_fd, notified;
    /* settings */
    double frame_s, slot_s, early_s, write_after_s, keepalive_s, stall_s, late_after_s;
    size_t max_payload, buffer_limit;
    int default_rate, hysteresis, nice_boost;
    /* connections: an id is (generation << 32) | (ID_BASE + index), never reused */
    Conn **conns;
    size_t nconns, capconns;
    uint64_t generation;
    Queue queues[2];
    int filling; /* the queue the I/O thread appends to */
    size_t closing; /* connections waiting to send their last bytes */
    size_t live;    /* connections not yet released */
    uint64_t wakeups; /* passes that wrote at least one frame */
    uint8_t silence[HEADER + MAX_FRAME];
    uint8_t rbuf[READ_CHUNK]; /* every read lands here first (the I/O thread's only) */
} Engine;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int rate_of_kind(int kind) {
    switch (kind) {
    case 0x10: return 8000;
    case 0x11: return 12000;
    case 0x12: return 16000;
    case 0x13: return 24000;
    case 0x14: return 32000;
    case 0x15: return 44100;
    case 0x16: return 48000;
    case 0x17: return 96000;
    case 0x18: return 192000;
    default: return 0;
    }
}

static int kind_of_rate(int rate) {
    static const int rates[] = {8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000};
    for (int i = 0; i < 9; i++)
        if (rates[i] == rate) return 0x10 + i;
    return -1;
}

static int known_kind(int kind) {
    return kind == 0x00 || kind == 0x01 || kind == 0x03 || kind == 0xff || rate_of_kind(kind);
}

/* --- events ---------------------------------------------------------------------------- */

static void emit(Engine *e, int type, Conn *c, int value, double t, const uint8_t *data,
                 size_t len) {
    Queue *q = &e->queues[e->filling];
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        Event *items = realloc(q->items, cap * sizeof(Event));
        if (!items) return; /* out of memory: the event is lost, the engine goes on */
        q->items = items;
        q->cap = cap;
    }
    Event *ev = &q->items[q->count];
    ev->type = type;
    ev->id = c->id;
    ev->value = value;
    ev->t = t;
    ev->off = q->arena.len;
    ev->len = 0;
    if (len) {
        if (buf_append(&q->arena, data, len)) return;
        ev->len = len;
    }
    q->count++;
}

static void notify(Engine *e) {
    if (!e->notified && e->queues[e->filling].count) {
        uint64_t one = 1;
        e->notified = 1;
        if (write(e->notify_fd, &one, sizeof one) < 0) { /* the counter cannot overflow */
        }
    }
}

/* --- connections ----------------------------------------------------------------------- */

static Conn *lookup(Engine *e, uint64_t id) {
    uint32_t low = (uint32_t)id;
    if (low < ID_BASE) return NULL;
    size_t index = low - ID_BASE;
    if (index >= e->nconns) return NULL;
    Conn *c = e->conns[index];
    return c && c->id == id && c->state != FREE ? c : NULL;
}

static void set_format(Engine *e, Conn *c) {
    c->frame_bytes = (int)((int64_t)c->rate * (int64_t)llround(e->frame_s * 1000) / 1000) * 2;
    int kind = kind_of_rate(c->rate);
    c->header[0] = (uint8_t)kind;
    c->header[1] = (uint8_t)(c->frame_bytes >> 8);
    c->header[2] = (uint8_t)(c->frame_bytes & 0xff);
}

static void watch(Engine *e, Conn *c) {
    if (c->fd < 0 || c->state == DEAD) return;
    struct epoll_event ev;
    ev.events = (c->reading ? EPOLLIN | EPOLLRDHUP : 0) | (c->want_out ? EPOLLOUT : 0);
    ev.data.u64 = c->id;
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void release(Engine *e, Conn *c) {
    if (c->fd >= 0) {
        close(c->fd); /* also takes it out of the epoll set */
        c->fd = -1;
    }
    buf_free(&c->in);
    buf_free(&c->playback);
    buf_free(&c->out);
    c->state = FREE;
    c->pacing = 0;
    e->live--;
}

static void go_dead(Engine *e, Conn *c) {
    if (c->state != OPEN) return;
    c->state = DEAD;
    c->pacing = 0;
    c->reading = 0;
    c->want_out = 0;
    /* out of the set: epoll reports a hang-up even when nothing is asked for */
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

/* Send what waits in ``out``; 0 when all of it went, 1 when some waits, -1 on an error. */
static int flush_out(Engine *e, Conn *c) {
    while (c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out.head, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
    return 0;
}

static void lost(Engine *e, Conn *c, int err, double now) {
    if (c->state == OPEN) {
        emit(e, EV_LOST, c, err, now, NULL, 0);
        go_dead(e, c);
    } else if (c->state == CLOSING) {
        release(e, c);
    }
}

/* --- pacing ---------------------------------------------------------------------------- */

static int64_t now_tick(Engine *e, double now) { return (int64_t)floor((now + e->early_s) / e->slot_s); }

static int64_t imod(int64_t a, int64_t m) {
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

static void observe_phase(Engine *e, Conn *c, double t) {
    double frame = e->frame_s;
    double gap = t - c->last_arrival;
    c->last_arrival = t;
    if (!c->has_phase || gap > 1.0) {
        c->phase = fmod(t, frame);
        c->has_phase = 1;
        return;
    }
    double error = fmod(t - c->phase, frame);
    if (error < 0) error += frame;
    if (error >= 0.5 * frame) error -= frame;
    if (error > 0.002) error = 0.002;
    if (error < -0.002) error = -0.002;
    double phase = fmod(c->phase + 0.1 * error, frame);
    c->phase = phase < 0 ? phase + frame : phase;
}

static void steer(Engine *e, Conn *c, double write_phase, int jump, double now) {
    double frame = e->frame_s;
    double p = fmod(write_phase, frame);
    if (p < 0) p += frame;
    double want = p / e->slot_s;
    int current = c->target >= 0 ? c->target : (int)imod(c->next_tick, SLOTS);
    double dist = fmod(current - want, SLOTS);
    if (dist < 0) dist += SLOTS;
    if (dist <= e->hysteresis + 1e-6)
        c->target = current;
    else
        c->target = (int)imod((int64_t)ceil(want - 1e-6), SLOTS);
    if (jump && imod(c->next_tick, SLOTS) != c->target) {
        int64_t base = now_tick(e, now) + 1;
        c->next_tick = base + imod(c->target - base, SLOTS);
    }
}

static void record_write(Conn *c, double error, double late_after) {
    c->frames_out++;
    if (error > late_after) c->late++;
    int bucket = error > 0 ? (int)(error * 10000.0) : 0;
    c->hist[bucket < BUCKETS ? bucket : BUCKETS]++;
}

/* Write one frame of ``c`` for the deadline at ``deadline`` (seconds). */
static void write_frame(Engine *e, Conn *c, double deadline, int64_t skipped, double now) {
    c->skipped += (uint64_t)skipped;
    if (!c->rate_known && !c->playback.len && now - c->connected_at < e->keepalive_s) return;
    if (c->write_paused) {
        c->dropped++;
        if (now - c->paused_since > e->stall_s && !c->stall_reported) {
            c->stall_reported = 1;
            emit(e, EV_STALLED, c, 0, now, NULL, 0);
        }
        return;
    }
    size_t size = (size_t)c->frame_bytes;
    uint8_t frame[HEADER + MAX_FRAME];
    const uint8_t *wire = e->silence;
    memcpy(e->silence, c->header, HEADER);
    if (c->playback.len && !c->rate_hold) {
        size_t take = c->playback.len < size ? c->playback.len : size;
        memcpy(frame, c->header, HEADER);
        memcpy(frame + HEADER, c->playback.data + c->playback.head, take);
        if (take < size) memset(frame + HEADER + take, 0, size - take);
        buf_consume(&c->playback, take);
        c->played_bytes += take;
        c->audio_frames_out++;
        wire = frame;
    }
    if (c->low_armed && c->playback.len < 2 * size) {
        c->low_armed = 0;
        emit(e, EV_LOW, c, 0, now, NULL, 0);
    }
    size_t total = HEADER + size;
    if (!c->out.len) {
        ssize_t n = send(c->fd, wire, total, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                lost(e, c, errno, now);
                return;
            }
            n = 0;
        }
        if ((size_t)n < total) {
            buf_append(&c->out, wire + n, total - (size_t)n);
            c->want_out = 1;
            watch(e, c);
        }
    } else {
        buf_append(&c->out, wire, total);
    }
    if (c->out.len > e->buffer_limit) {
        c->write_paused = 1;
        c->paused_since = now;
    }
    record_write(c, now - deadline, e->late_after_s);
}

/* Write one frame of every paced connection due by now. Called without the lock: it takes it
 * for GROUP connections at a time, so Python (play(), events()) never waits long for it. */
static void serve_due(Engine *e) {
    double now = mono();
    int64_t due = now_tick(e, now);
    int wrote = 0;
    pthread_mutex_lock(&e->lock);
    if (e->closing) { /* a peer that reads nothing cannot hold a closing socket for ever */
        e->closing = 0;
        for (size_t i = 0; i < e->nconns; i++) {
            Conn *c = e->conns[i];
            if (!c || c->state != CLOSING) continue;
            if (now - c->closing_since > e->stall_s) release(e, c);
            else e->closing++;
        }
    }
    pthread_mutex_unlock(&e->lock);
    for (size_t first = 0;; first += GROUP) {
        pthread_mutex_lock(&e->lock);
        size_t last = first + GROUP < e->nconns ? first + GROUP : e->nconns;
        for (size_t i = first; i < last; i++) {
            Conn *c = e->conns[i];
            if (!c || c->state != OPEN || !c->pacing || c->next_tick > due) continue;
            /* after a stall, the slot's latest deadline only: the missed ones are skipped */
            int64_t behind = (due - c->next_tick) / SLOTS;
            int64_t tick = c->next_tick + behind * SLOTS;
            write_frame(e, c, tick * e->slot_s, behind, now);
            wrote = 1;
            if (c->state != OPEN) continue;
            int step = 0;
            if (c->target >= 0) {
                int slot = (int)imod(tick, SLOTS);
                if (c->target != slot) {
                    step = imod(c->target - slot, SLOTS) <= SLOTS / 2 ? 1 : -1;
                    if (tick + SLOTS + step <= due) step = 0; /* catching up: never early twice */
                }
            }
            c->next_tick = tick + SLOTS + step;
        }
        int done = last >= e->nconns;
        if (done && wrote) e->wakeups++;
        if (done) notify(e); /* what the writes found (a short queue, a stalled peer) */
        pthread_mutex_unlock(&e->lock);
        if (done) return;
    }
}

/* --- reading --------------------------------------------------------------------------- */

static void learn_rate(Engine *e, Conn *c, int rate) {
    int known = c->rate_known;
    c->rate_known = 1;
    if (rate == c->rate) return;
    if (known || c->playback.len) c->rate_hold = 1; /* Python resamples what is queued */
    c->played_bytes = c->played_bytes * (uint64_t)rate / (uint64_t)c->rate;
    c->rate = rate;
    set_format(e, c);
}

/* Hand over the whole frames in ``p[0:len)``; returns the bytes used (the rest is a partial
 * frame). After an invalid header everything left goes to Python, which names the error. */
static size_t parse(Engine *e, Conn *c, const uint8_t *p, size_t len, double now) {
    size_t pos = 0;
    int first = 1;
    while (len - pos >= HEADER && !c->stop_parsing) {
        const uint8_t *f = p + pos;
        int kind = f[0];
        size_t length = ((size_t)f[1] << 8) | f[2];
        if (!known_kind(kind) || length > e->max_payload) {
            emit(e, EV_RAW, c, 0, now, f, len - pos);
            c->stop_parsing = 1;
            c->reading = 0;
            watch(e, c);
            return len;
        }
        if (len - pos < HEADER + length) break;
        int rate = rate_of_kind(kind);
        if (rate && length && !(length & 1)) {
            c->frames_in++;
            if (rate != c->rate || !c->rate_known) learn_rate(e, c, rate);
            if (first) { /* frames read together tell one arrival */
                first = 0;
                observe_phase(e, c, now);
                if (c->pacing && (!c->frames_out || !(c->frames_in & 3)))
                    steer(e, c, c->phase + e->write_after_s, !c->frames_out, now);
            }
            emit(e, EV_AUDIO, c, rate, now, f + HEADER, length);
        } else {
            emit(e, EV_RAW, c, 0, now, f, HEADER + length);
        }
        pos += HEADER + length;
    }
    return pos;
}

static void do_read(Engine *e, Conn *c) {
    for (;;) {
        ssize_t n = recv(c->fd, e->rbuf, READ_CHUNK, MSG_DONTWAIT);
        double now = mono();
        if (n > 0) {
            /* a partial frame waits in the connection's own buffer; whole reads never copy */
            if (c->in.len) {
                if (buf_append(&c->in, e->rbuf, (size_t)n)) {
                    lost(e, c, ENOMEM, now);
                    return;
                }
                buf_consume(&c->in, parse(e, c, c->in.data + c->in.head, c->in.len, now));
            } else {
                size_t used = parse(e, c, e->rbuf, (size_t)n, now);
                if (used < (size_t)n && buf_append(&c->in, e->rbuf + used, (size_t)n - used)) {
                    lost(e, c, ENOMEM, now);
                    return;
                }
            }
            if (c->state != OPEN || !c->reading || n < READ_CHUNK) return;
            continue;
        }
        if (n == 0) {
            /* what is left is an incomplete frame: Python's parser reports it */
            emit(e, EV_EOF, c, 0, now, c->in.data + c->in.head, c->in.len);
            buf_consume(&c->in, c->in.len);
            go_dead(e, c);
            return;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) lost(e, c, errno, now);
        return;
    }
}

/* --- the I/O thread -------------------------------------------------------------------- */

/* Sleep to the moment sub-tick ``tick`` is due (or a little before, as the timer would). */
static void sleep_to_tick(Engine *e, int64_t tick) {
    double at = tick * e->slot_s - e->early_s * 0.5;
    struct timespec ts;
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void handle(Engine *e, uint64_t key, uint32_t what) {
    Conn *c = lookup(e, key);
    if (!c) return;
    if (c->state == CLOSING) {
        int r = flush_out(e, c);
        if (r <= 0 || mono() - c->closing_since > e->stall_s) release(e, c);
        return;
    }
    if (c->state != OPEN) return;
    if ((what & EPOLLOUT) && c->out.len) {
        int r = flush_out(e, c);
        if (r < 0) {
            lost(e, c, errno, mono());
            return;
        }
        if (!r) {
            c->want_out = 0;
            watch(e, c);
        }
        if (c->write_paused && c->out.len <= e->buffer_limit / 4) {
            c->write_paused = 0;
            c->stall_reported = 0;
        }
    }
    if ((what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && c->reading) {
        do_read(e, c);
    } else if ((what & (EPOLLHUP | EPOLLERR)) && c->state == OPEN) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (what & EPOLLHUP)) lost(e, c, err ? err : ECONNRESET, mono());
    }
}

/* With connections open the thread runs on the 1 ms grid: it sleeps to the next sub-tick,
 * then takes every socket that became ready meanwhile in one epoll_wait(0), writes what is
 * due and hands Python one batch: at most ~1,000 wake-ups a second for it and for the event
 * loop however many calls there are, instead of one per frame read (frames wait at most
 * 1 ms before they are read). With none open it blocks in epoll_wait. It holds the lock for
 * GROUP sockets at a time, never for a whole pass. */
static void *io_thread(void *arg) {
    Engine *e = (Engine *)arg;
    struct epoll_event events[256];
    int n = 0;
    if (e->nice_boost > 0) {
        /* ahead of the process's own threads (the VAD, the models) and its neighbours when
           permitted (CAP_SYS_NICE, or RLIMIT_NICE); else it keeps the process's niceness */
        pid_t tid = (pid_t)syscall(SYS_gettid);
        errno = 0;
        int nice_now = getpriority(PRIO_PROCESS, (id_t)tid);
        if (!errno) setpriority(PRIO_PROCESS, (id_t)tid, nice_now - e->nice_boost);
    }
    for (;;) {
        pthread_mutex_lock(&e->lock);
        int running = e->running;
        size_t live = e->live;
        pthread_mutex_unlock(&e->lock);
        if (!running) break;
        if (n == 256) { /* more were ready than one call returns: take them now */
            n = epoll_wait(e->epfd, events, 256, 0);
        } else if (live) {
            sleep_to_tick(e, now_tick(e, mono()) + 1);
            n = epoll_wait(e->epfd, events, 256, 0);
        } else {
            n = epoll_wait(e->epfd, events, 256, -1);
        }
        if (n < 0) { /* EINTR */
            n = 0;
            continue;
        }
        for (int i = 0; i < n; i += GROUP) {
            pthread_mutex_lock(&e->lock);
            for (int j = i; j < n && j < i + GROUP; j++) {
                uint64_t key = events[j].data.u64;
                if (key == KEY_WAKE) {
                    uint64_t value;
                    if (read(e->wake_fd, &value, sizeof value) < 0) {
                    }
                } else {
                    handle(e, key, events[j].events);
                }
            }
            notify(e); /* what the first sockets brought goes to Python at once */
            pthread_mutex_unlock(&e->lock);
        }
        serve_due(e);
    }
    return NULL;
}

static void wake(Engine *e) {
    uint64_t one = 1;
    if (write(e->wake_fd, &one, sizeof one) < 0) {
    }
}

/* --- the Python type ------------------------------------------------------------------- */

static void engine_shutdown(Engine *e) {
    if (e->thread_started) {
        pthread_mutex_lock(&e->lock);
        e->running = 0;
        pthread_mutex_unlock(&e->lock);
        wake(e);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(e->thread, NULL);
        Py_END_ALLOW_THREADS
        e->thread_started = 0;
    }
    for (size_t i = 0; i < e->nconns; i++) {
        if (e->conns[i]) {
            if (e->conns[i]->state != FREE) release(e, e->conns[i]);
            free(e->conns[i]);
            e->conns[i] = NULL;
        }
    }
    e->nconns = 0;
    int *fds[] = {&e->epfd, &e->wake_fd, &e->notify_fd};
    for (int i = 0; i < 3; i++) {
        if (*fds[i] >= 0) close(*fds[i]);
        *fds[i] = -1;
    }
}

static void Engine_dealloc(Engine *e) {
    engine_shutdown(e);
    free(e->conns);
    for (int i = 0; i < 2; i++) {
        free(e->queues[i].items);
        buf_free(&e->queues[i].arena);
    }
    pthread_mutex_destroy(&e->lock);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int Engine_init(Engine *e, PyObject *args, PyObject *kwds) {
    static char *names[] = {"frame_ms",     "max_payload",     "write_after_ms",
                            "keepalive_s",  "write_buffer_limit", "write_stall_s",
                            "default_rate", "hysteresis_slots", "nice_boost",  NULL};
    double frame_ms = 20, write_after_ms = 3, keepalive_s = 1, stall_s = 5;
    Py_ssize_t max_payload = 8192, limit = 65536;
    int default_rate = 8000, hysteresis = 2, nice_boost = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|dnddndiii", names, &frame_ms, &max_payload,
                                     &write_after_ms, &keepalive_s, &limit, &stall_s,
                                     &default_rate, &hysteresis, &nice_boost))
        return -1;
    if (frame_ms <= 0 || frame_ms > 40 || max_payload <= 0 || max_payload > 65535 || limit <= 0 ||
        kind_of_rate(default_rate) < 0) {
        PyErr_SetString(PyExc_ValueError, "the native media engine takes frame_ms in (0, 40], "
                                         "max_payload in 1..65535, a positive write_buffer_limit "
                                         "and an AudioSocket rate as default_rate");
        return -1;
    }
    if (e->thread_started) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is running already");
        return -1;
    }
    e->frame_s = frame_ms / 1000.0;
    e->slot_s = e->frame_s / SLOTS;
    e->early_s = fmin(0.0005, e->slot_s / 2);
    e->write_after_s = write_after_ms / 1000.0;
    e->keepalive_s = keepalive_s;
    e->stall_s = stall_s;
    e->late_after_s = e->frame_s / 2;
    e->max_payload = (size_t)max_payload;
    e->buffer_limit = (size_t)limit;
    e->default_rate = default_rate;
    e->hysteresis = hysteresis;
    e->nice_boost = nice_boost < 0 ? 0 : nice_boost > 39 ? 39 : nice_boost;
    memset(e->silence, 0, sizeof e->silence);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->epfd < 0 || e->wake_fd < 0 || e->notify_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        engine_shutdown(e);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = KEY_WAKE;
    epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wake_fd, &ev);
    e->running = 1;
    int err = pthread_create(&e->thread, NULL, io_thread, e);
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        engine_shutdown(e);
        return -1;
    }
    e->thread_started = 1;
    pthread_setname_np(e->thread, "operadora-media"); /* its CPU can be told apart (bench) */
    return 0;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (!e) return NULL;
    pthread_mutex_init(&e->lock, NULL);
    e->epfd = e->wake_fd = e->notify_fd = -1;
    return (PyObject *)e;
}

/* A connection id from Python, read before the lock is taken (reading it may run Python). */
static int parse_id(PyObject *arg, unsigned long long *id) {
    *id = PyLong_AsUnsignedLongLong(arg);
    return *id == (unsigned long long)-1 && PyErr_Occurred() ? -1 : 0;
}

static Conn *get_conn(Engine *e, unsigned long long id) {
    Conn *c = lookup(e, id);
    if (!c) PyErr_Format(PyExc_KeyError, "no media connection %llu", id);
    return c;
}

/* Declares ``c``: the connection ``arg`` names, on which ``body`` runs under the lock; the
   function returns NULL (KeyError set) when there is none. */
#define WITH_CONN(arg, body)                                                                \
    Conn *c;                                                                                \
    unsigned long long cid;                                                                 \
    if (parse_id(arg, &cid)) return NULL;                                                   \
    LOCKED({                                                                                \
        c = get_conn(e, cid);                                                               \
        if (c) {                                                                            \
            body;                                                                           \
        }                                                                                   \
    });                                                                                     \
    if (!c) return NULL

#define LOCKED(body)                                                                        \
    do {                                                                                    \
        if (pthread_mutex_trylock(&e->lock)) {                                              \
            Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&e->lock);                            \
            Py_END_ALLOW_THREADS                                                            \
        }                                                                                   \
        body;                                                                               \
        pthread_mutex_unlock(&e->lock);                                                     \
    } while (0)

static PyObject *Engine_add(Engine *e, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    if (!e->thread_started) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is closed");
        return NULL;
    }
    Conn *c = calloc(1, sizeof(Conn));
    if (!c) return PyErr_NoMemory();
    PyObject *result = NULL;
    LOCKED({
        size_t index = e->nconns;
        for (size_t i = 0; i < e->nconns; i++) {
            if (!e->conns[i] || e->conns[i]->state == FREE) {
                index = i;
                break;
            }
        }
        if (index == e->nconns) {
            if (e->nconns == e->capconns) {
                size_t cap = e->capconns ? e->capconns * 2 : 1024;
                Conn **conns = realloc(e->conns, cap * sizeof(Conn *));
                if (!conns) {
                    PyErr_NoMemory();
                    goto done;
                }
                for (size_t i = e->capconns; i < cap; i++) conns[i] = NULL;
                e->conns = conns;
                e->capconns = cap;
            }
            e->nconns++;
        }
        free(e->conns[index]);
        e->conns[index] = c;
        c->id = ((uint64_t)(++e->generation) << 32) | (uint64_t)(ID_BASE + index);
        c->state = OPEN;
        e->live++;
        c->fd = fd;
        c->reading = 1;
        c->target = -1;
        c->connected_at = mono();
        c->rate = e->default_rate;
        set_format(e, c);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
        ev.data.u64 = c->id;
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev)) {
            PyErr_SetFromErrno(PyExc_OSError);
            c->fd = -1;
            c->state = FREE;
            e->live--;
            goto done;
        }
        c = NULL;
        result = PyLong_FromUnsignedLongLong(e->conns[index]->id);
    done:;
    });
    free(c);
    return result;
}

static PyObject *Engine_start(Engine *e, PyObject *arg) {
    /* the call is accepted: its first frame is due one period from now */
    WITH_CONN(arg, if (c->state == OPEN && !c->pacing) {
        c->pacing = 1;
        c->next_tick = now_tick(e, mono()) + SLOTS;
    });
    Py_RETURN_NONE;
}

static PyObject *Engine_play(Engine *e, PyObject *args) {
    PyObject *id;
    Py_buffer pcm;
    int holds = 0;
    if (!PyArg_ParseTuple(args, "Oy*|p", &id, &pcm, &holds)) return NULL;
    Conn *c;
    int failed = 0;
    unsigned long long cid;
    if (parse_id(id, &cid)) {
        PyBuffer_Release(&pcm);
        return NULL;
    }
    LOCKED({
        c = get_conn(e, cid);
        if (c) {
            failed = buf_append(&c->playback, pcm.buf, (size_t)pcm.len);
            if (holds) c->low_armed = 1;
        }
    });
    PyBuffer_Release(&pcm);
    if (!c) return NULL;
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Engine_play_many(Engine *e, PyObject *plays) {
    /* [(id, pcm, holds)]: the plays of one pass of the event loop, under one hold of the lock
       (a connection that has ended meanwhile is skipped) */
    if (!PyList_Check(plays)) {
        PyErr_SetString(PyExc_TypeError, "play_many takes a list of (id, pcm, holds)");
        return NULL;
    }
    /* a tuple of the list holds every item (and so its bytes) whatever runs meanwhile */
    PyObject *items = PyList_AsTuple(plays);
    if (!items) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "play_many takes a list of (id, pcm bytes, holds)");
            Py_DECREF(items);
            return NULL;
        }
    }
    /* ids and flags are read before the lock is taken (reading them may run Python) */
    unsigned long long *ids = PyMem_Malloc((size_t)(count ? count : 1) * sizeof *ids);
    char *holds = PyMem_Malloc((size_t)(count ? count : 1));
    if (!ids || !holds) {
        PyMem_Free(ids);
        PyMem_Free(holds);
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        int flag = PyObject_IsTrue(PyTuple_GET_ITEM(item, 2));
        if (parse_id(PyTuple_GET_ITEM(item, 0), &ids[i]) || flag < 0) {
            PyMem_Free(ids);
            PyMem_Free(holds);
            Py_DECREF(items);
            return NULL;
        }
        holds[i] = (char)flag;
    }
    int failed = 0;
    LOCKED({
        for (Py_ssize_t i = 0; i < count && !failed; i++) {
            Conn *c = lookup(e, ids[i]);
            if (!c || c->state != OPEN) continue;
            PyObject *pcm = PyTuple_GET_ITEM(PyTuple_GET_ITEM(items, i), 1);
            failed = buf_append(&c->playback, (uint8_t *)PyBytes_AS_STRING(pcm),
                                (size_t)PyBytes_GET_SIZE(pcm));
            if (holds[i]) c->low_armed = 1;
        }
    });
    PyMem_Free(ids);
    PyMem_Free(holds);
    Py_DECREF(items);
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Engine_clear(Engine *e, PyObject *arg) {
    size_t dropped = 0;
    WITH_CONN(arg, {
        dropped = c->playback.len;
        buf_consume(&c->playback, c->playback.len);
        c->low_armed = 0;
    });
    return PyLong_FromSize_t(dropped);
}

static PyObject *Engine_take_playback(Engine *e, PyObject *arg) {
    /* after a change of the line's rate: the queued audio (at the old rate), to resample */
    PyObject *result = NULL;
    WITH_CONN(arg, {
        result = PyBytes_FromStringAndSize((char *)c->playback.data + c->playback.head,
                                           (Py_ssize_t)c->playback.len);
        buf_consume(&c->playback, c->playback.len);
        c->rate_hold = 0;
    });
    return result;
}

static PyObject *Engine_playback(Engine *e, PyObject *arg) {
    /* (queued bytes, played bytes, rate) */
    PyObject *result = NULL;
    WITH_CONN(arg, result = Py_BuildValue("(nKi)", (Py_ssize_t)c->playback.len,
                                          (unsigned long long)c->played_bytes, c->rate));
    return result;
}

static PyObject *Engine_set_reading(Engine *e, PyObject *args) {
    PyObject *id;
    int on;
    if (!PyArg_ParseTuple(args, "Op", &id, &on)) return NULL;
    WITH_CONN(id, if (c->state == OPEN && !c->stop_parsing && c->reading != on) {
        c->reading = on;
        watch(e, c);
    });
    Py_RETURN_NONE;
}

static PyObject *Engine_stats(Engine *e, PyObject *arg) {
    /* (frames_in, frames_out, audio_frames_out, late, skipped, dropped, histogram bytes,
        bytes waiting to be sent) */
    PyObject *result = NULL;
    WITH_CONN(arg, result = Py_BuildValue(
                       "(KKKKKKy#n)", (unsigned long long)c->frames_in,
                       (unsigned long long)c->frames_out, (unsigned long long)c->audio_frames_out,
                       (unsigned long long)c->late, (unsigned long long)c->skipped,
                       (unsigned long long)c->dropped, (char *)c->hist,
                       (Py_ssize_t)sizeof c->hist, (Py_ssize_t)c->out.len));
    return result;
}

static PyObject *Engine_close_conn(Engine *e, PyObject *args) {
    /* graceful: send what waits (and ``last``), then close; abort: close at once */
    PyObject *id;
    Py_buffer last = {0};
    int abort_now = 0;
    if (!PyArg_ParseTuple(args, "O|y*p", &id, &last, &abort_now)) return NULL;
    Conn *c;
    unsigned long long cid;
    if (parse_id(id, &cid)) {
        if (last.buf) PyBuffer_Release(&last);
        return NULL;
    }
    LOCKED({
        c = get_conn(e, cid);
        if (c) {
            c->pacing = 0;
            if (abort_now || c->fd < 0) {
                release(e, c);
            } else {
                if (last.buf && last.len) buf_append(&c->out, last.buf, (size_t)last.len);
                int r = flush_out(e, c);
                if (r == 1) {
                    c->state = CLOSING;
                    e->closing++;
                    c->closing_since = mono();
                    c->reading = 0;
                    c->want_out = 1;
                    watch(e, c);
                } else {
                    release(e, c);
                }
            }
        }
    });
    if (last.buf) PyBuffer_Release(&last);
    if (!c) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_events(Engine *e, PyObject *unused) {
    /* [(type, id, value, t, bytes)] in the order they happened (bytes empty: none) */
    uint64_t value;
    if (read(e->notify_fd, &value, sizeof value) < 0) { /* nothing to read is fine */
    }
    Queue *q;
    LOCKED({
        q = &e->queues[e->filling];
        e->filling ^= 1;
        e->notified = 0;
    });
    PyObject *list = PyList_New((Py_ssize_t)q->count);
    if (list) {
        for (size_t i = 0; i < q->count; i++) {
            Event *ev = &q->items[i];
            PyObject *data = PyBytes_FromStringAndSize(
                (char *)q->arena.data + q->arena.head + ev->off, (Py_ssize_t)ev->len);
            PyObject *item = data ? Py_BuildValue("(iKidN)", ev->type, (unsigned long long)ev->id,
                                                  ev->value, ev->t, data)
                                  : NULL;
            if (!item) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
        }
    }
    q->count = 0;
    q->arena.head = q->arena.len = 0;
    if (q->arena.cap > (1u << 24)) buf_free(&q->arena); /* a backlog's memory goes back */
    return list;
}

static PyObject *Engine_fd(Engine *e, PyObject *arg) {
    /* a connection's socket, to read its options (-1 once it is closed) */
    int fd = -1;
    WITH_CONN(arg, fd = c->fd);
    return PyLong_FromLong(fd);
}

static PyObject *Engine_slot(Engine *e, PyObject *arg) {
    /* the 1 ms slot of the connection's next write (-1 when it is not paced) */
    long slot = -1;
    WITH_CONN(arg, if (c->pacing && c->state == OPEN) slot = (long)imod(c->next_tick, SLOTS));
    return PyLong_FromLong(slot);
}

static PyObject *Engine_fileno(Engine *e, PyObject *unused) { return PyLong_FromLong(e->notify_fd); }

static PyObject *Engine_wakeups(Engine *e, PyObject *unused) {
    unsigned long long n;
    LOCKED(n = e->wakeups);
    return PyLong_FromUnsignedLongLong(n);
}



static PyObject *Engine_close(Engine *e, PyObject *unused) {
    engine_shutdown(e);
    Py_RETURN_NONE;
}

static PyMethodDef Engine_methods[] = {
    {"add", (PyCFunction)Engine_add, METH_VARARGS, "add(fd) -> id: take over a connected socket"},
    {"start", (PyCFunction)Engine_start, METH_O, "start(id): begin the paced writes"},
    {"play", (PyCFunction)Engine_play, METH_VARARGS, "play(id, pcm, holds=False): queue audio"},
    {"play_many", (PyCFunction)Engine_play_many, METH_O, "play_many([(id, pcm, holds)])"},
    {"clear", (PyCFunction)Engine_clear, METH_O, "clear(id) -> bytes dropped"},
    {"take_playback", (PyCFunction)Engine_take_playback, METH_O, "take the queued audio"},
    {"playback", (PyCFunction)Engine_playback, METH_O, "(queued, played, rate)"},
    {"set_reading", (PyCFunction)Engine_set_reading, METH_VARARGS, "pause or resume reading"},
    {"stats", (PyCFunction)Engine_stats, METH_O, "a connection's counters"},
    {"close_conn", (PyCFunction)Engine_close_conn, METH_VARARGS, "close_conn(id, last, abort)"},
    {"events", (PyCFunction)Engine_events, METH_NOARGS, "drain the event queue"},
    {"slot", (PyCFunction)Engine_slot, METH_O, "slot(id): the slot of the next write"},
    {"fd", (PyCFunction)Engine_fd, METH_O, "fd(id): the connection's socket"},
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "readable when events wait"},
    {"wakeups", (PyCFunction)Engine_wakeups, METH_NOARGS, "passes that wrote frames"},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "stop the thread, close every socket"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "operadora.audiosocket._native.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The AudioSocket I/O thread: reads, frames and paced writes of many calls.",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "The AudioSocket hot path in C (Linux).", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "AUDIO", EV_AUDIO);
    PyModule_AddIntConstant(m, "RAW", EV_RAW);
    PyModule_AddIntConstant(m, "EOF", EV_EOF);
    PyModule_AddIntConstant(m, "LOST", EV_LOST);
    PyModule_AddIntConstant(m, "STALLED", EV_STALLED);
    PyModule_AddIntConstant(m, "LOW", EV_LOW);
    return m;
}
