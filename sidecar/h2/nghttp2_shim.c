/* The native HTTP/2 codec's C side: nghttp2's session without its I/O, with every callback in C.
 *
 * One read (`shim_recv`) collects its events into two flat buffers that Python reads at once: `ev`, records of
 * five int32 (kind, stream id, offset, length, extra) and `buf`, the bytes they point at (header blocks as
 * "name\0value\0name\0value", DATA payloads; consecutive DATA of a stream merged). One `shim_send` serializes
 * every queued frame into `out`. Outgoing DATA is buffered per stream here and pulled by nghttp2 as flow
 * control allows; trailers wait behind it. So Python is called a few times per read, never per frame or field.
 */
#include <stdlib.h>
#include <string.h>
#include <nghttp2/nghttp2.h>

#define EV_HEADERS 1  /* a request or a (final or 1xx) response head; extra: 1 if it ended the stream */
#define EV_DATA 2     /* extra: flow-controlled length */
#define EV_END 3      /* END_STREAM on a DATA frame */
#define EV_TRAILERS 4
#define EV_WINDOW 5   /* WINDOW_UPDATE (stream 0: the connection's) */
#define EV_SETTINGS 6 /* the peer's SETTINGS (not an ACK) */
#define EV_RESET 7    /* a stream closed with an error (reset by either side); extra: error code */
#define EV_GOAWAY 8   /* sid: last stream id; extra: error code */

typedef struct sstream {
    int32_t sid;
    char *buf;
    size_t off, len, cap;
    int eof, dp_active;
    char *trailers;
    size_t tlen;
    struct sstream *prev, *next;
} sstream;

typedef struct shim {
    nghttp2_session *s;
    int32_t *ev;
    size_t ev_len, ev_cap; /* in records */
    size_t ev_delivered;   /* records Python has read (a send's late events follow them) */
    char *buf;
    size_t buf_len, buf_cap;
    size_t hdr_start;
    int hdr_open, hdr_pseudo;
    uint8_t *out;
    size_t out_len, out_cap;
    sstream *streams;
    uint32_t term;    /* the error code of a GOAWAY we sent (nghttp2 ends a connection the peer broke) */
    char why[160];    /* nghttp2's text for the last connection error */
} shim;

static int grow(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    char *n = realloc(*p, c);
    if (!n) return -1;
    *p = n;
    *cap = c;
    return 0;
}

static int put(char **p, size_t *len, size_t *cap, const void *data, size_t n) {
    if (grow(p, cap, *len + n)) return -1;
    memcpy(*p + *len, data, n);
    *len += n;
    return 0;
}

static int event(shim *sh, int32_t kind, int32_t sid, size_t off, size_t len, int32_t extra) {
    if (sh->ev_len == sh->ev_cap) {
        size_t c = sh->ev_cap ? sh->ev_cap * 2 : 64;
        int32_t *n = realloc(sh->ev, c * 5 * sizeof(int32_t));
        if (!n) return -1;
        sh->ev = n;
        sh->ev_cap = c;
    }
    int32_t *r = sh->ev + sh->ev_len * 5;
    r[0] = kind; r[1] = sid; r[2] = (int32_t)off; r[3] = (int32_t)len; r[4] = extra;
    sh->ev_len++;
    return 0;
}

static sstream *lookup(shim *sh, int32_t sid);

/* --- receiving ---------------------------------------------------------------------------------------- */
static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    shim *sh = ud;
    if (sh->hdr_open) sh->buf_len = sh->hdr_start; /* a block that was refused: forget its fields */
    sh->hdr_open = 1;
    sh->hdr_pseudo = 0;
    sh->hdr_start = sh->buf_len;
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
    shim *sh = ud;
    if (namelen && name[0] == ':') sh->hdr_pseudo = 1;
    if (grow(&sh->buf, &sh->buf_cap, sh->buf_len + namelen + valuelen + 2)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    char *p = sh->buf + sh->buf_len;
    if (sh->buf_len > sh->hdr_start) *p++ = 0;
    memcpy(p, name, namelen); p += namelen;
    *p++ = 0;
    memcpy(p, value, valuelen); p += valuelen;
    sh->buf_len = p - sh->buf;
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                         void *ud) {
    shim *sh = ud;
    if (sh->ev_len) { /* merge with the previous DATA of this stream */
        int32_t *r = sh->ev + (sh->ev_len - 1) * 5;
        if (r[0] == EV_DATA && r[1] == sid && (size_t)(r[2] + r[3]) == sh->buf_len) {
            if (put(&sh->buf, &sh->buf_len, &sh->buf_cap, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
            r[3] += (int32_t)len;
            r[4] += (int32_t)len;
            return 0;
        }
    }
    size_t off = sh->buf_len;
    if (put(&sh->buf, &sh->buf_len, &sh->buf_cap, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (event(sh, EV_DATA, sid, off, len, (int32_t)len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    shim *sh = ud;
    int rv = 0;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS: {
        int ended = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        int head = f->headers.cat != NGHTTP2_HCAT_HEADERS || sh->hdr_pseudo;
        if (!sh->hdr_open) break;
        sh->hdr_open = 0;
        rv = event(sh, head ? EV_HEADERS : EV_TRAILERS, f->hd.stream_id, sh->hdr_start,
                   sh->buf_len - sh->hdr_start, ended);
        break;
    }
    case NGHTTP2_DATA:
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) rv = event(sh, EV_END, f->hd.stream_id, 0, 0, 0);
        break;
    case NGHTTP2_WINDOW_UPDATE:
        rv = event(sh, EV_WINDOW, f->hd.stream_id, 0, 0, 0);
        break;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) rv = event(sh, EV_SETTINGS, 0, 0, 0, 0);
        break;
    case NGHTTP2_GOAWAY:
        rv = event(sh, EV_GOAWAY, f->goaway.last_stream_id, 0, 0, (int32_t)f->goaway.error_code);
        break;
    }
    return rv ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static void unlink_stream(shim *sh, sstream *st) {
    if (st->prev) st->prev->next = st->next; else sh->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    free(st->buf);
    free(st->trailers);
    free(st);
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud) {
    shim *sh = ud;
    sstream *st = nghttp2_session_get_stream_user_data(s, sid);
    if (st) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        unlink_stream(sh, st);
    }
    if (code) return event(sh, EV_RESET, sid, 0, 0, (int32_t)code) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    shim *sh = ud;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code && !sh->term) sh->term = f->goaway.error_code;
    return 0;
}

/* A request nghttp2 will not send (the peer's GOAWAY came first): a RESET REFUSED_STREAM, read by Python after
 * the send (never processed by the endpoint: the call may go elsewhere). */
static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int error, void *ud) {
    shim *sh = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    sstream *st = lookup(sh, f->hd.stream_id);
    if (st && !nghttp2_session_find_stream(s, f->hd.stream_id)) unlink_stream(sh, st);
    event(sh, EV_RESET, f->hd.stream_id, 0, 0, NGHTTP2_REFUSED_STREAM);
    return 0;
}

static int on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *ud) {
    shim *sh = ud;
    if (len >= sizeof(sh->why)) len = sizeof(sh->why) - 1;
    memcpy(sh->why, msg, len);
    sh->why[len] = 0;
    return 0;
}

/* --- sending ------------------------------------------------------------------------------------------- */
static int parse_nv(const char *p, size_t len, nghttp2_nv **out) {
    size_t fields = 1;
    for (size_t i = 0; i < len; i++) fields += p[i] == 0;
    if (len == 0 || fields % 2) return -1;
    nghttp2_nv *nv = malloc(sizeof(nghttp2_nv) * (fields / 2));
    if (!nv) return -1;
    const char *end = p + len;
    for (size_t i = 0; i < fields / 2; i++) {
        const char *z = memchr(p, 0, end - p);
        nv[i].name = (uint8_t *)p;
        nv[i].namelen = z - p;
        p = z + 1;
        z = memchr(p, 0, end - p);
        if (!z) z = end;
        nv[i].value = (uint8_t *)p;
        nv[i].valuelen = z - p;
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
        p = z + 1;
    }
    *out = nv;
    return (int)(fields / 2);
}

static ssize_t read_data(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
    sstream *st = src->ptr;
    size_t n = st->len - st->off;
    if (n > length) n = length;
    memcpy(buf, st->buf + st->off, n);
    st->off += n;
    if (st->off == st->len) {
        st->off = st->len = 0;
        if (st->eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            st->dp_active = 0;
            if (st->trailers) {
                nghttp2_nv *nv;
                int count = parse_nv(st->trailers, st->tlen, &nv);
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                if (count > 0) {
                    nghttp2_submit_trailer(s, sid, nv, count);
                    free(nv);
                }
                free(st->trailers);
                st->trailers = NULL;
            }
        } else if (n == 0) {
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

static sstream *new_stream(shim *sh, int32_t sid) {
    sstream *st = calloc(1, sizeof(sstream));
    if (!st) return NULL;
    st->sid = sid;
    st->next = sh->streams;
    if (st->next) st->next->prev = st;
    sh->streams = st;
    return st;
}

/* The stream's send state: nghttp2 keeps it once the stream is open; a request not sent yet is in the list. */
static sstream *lookup(shim *sh, int32_t sid) {
    sstream *st = nghttp2_session_get_stream_user_data(sh->s, sid);
    if (st || nghttp2_session_find_stream(sh->s, sid)) return st;
    for (st = sh->streams; st; st = st->next)
        if (st->sid == sid) return st;
    return NULL;
}

static sstream *stream_of(shim *sh, int32_t sid) {
    sstream *st = lookup(sh, sid);
    if (st || !nghttp2_session_find_stream(sh->s, sid)) return st;
    st = new_stream(sh, sid);
    if (st && nghttp2_session_set_stream_user_data(sh->s, sid, st)) {
        unlink_stream(sh, st);
        return NULL;
    }
    return st;
}

static int kick(shim *sh, int32_t sid, sstream *st) {
    if (st->dp_active) {
        nghttp2_session_resume_data(sh->s, sid); /* (an error only says it was not deferred) */
        return 0;
    }
    nghttp2_data_provider dp;
    dp.source.ptr = st;
    dp.read_callback = read_data;
    /* END_STREAM goes with our EOF (read_data says NO_END_STREAM when trailers follow) */
    int rv = nghttp2_submit_data(sh->s, NGHTTP2_FLAG_END_STREAM, sid, &dp);
    if (rv == 0) st->dp_active = 1;
    return rv;
}

/* Queue DATA for `sid` (all of it: the caller keeps to the window), END_STREAM after it if `end`. */
int shim_data(shim *sh, int32_t sid, const char *data, size_t len, int end) {
    sstream *st = stream_of(sh, sid);
    if (!st) return NGHTTP2_ERR_STREAM_CLOSED;
    if (st->eof) return NGHTTP2_ERR_STREAM_SHUT_WR;
    if (st->off && st->off == st->len) st->off = st->len = 0;
    if (put(&st->buf, &st->len, &st->cap, data, len)) return NGHTTP2_ERR_NOMEM;
    st->eof = end;
    return kick(sh, sid, st);
}

/* A head (sid -1: a new request; returns its stream id), or trailers when the stream's DATA started. */
int32_t shim_headers(shim *sh, int32_t sid, const char *nvbuf, size_t len, int end) {
    nghttp2_nv *nv;
    int count = parse_nv(nvbuf, len, &nv);
    if (count < 0) return NGHTTP2_ERR_INVALID_ARGUMENT;
    int32_t rv;
    if (sid < 0) { /* a request: its DATA (if any) comes through a provider attached now */
        sstream *st = end ? NULL : new_stream(sh, 0);
        nghttp2_data_provider dp;
        dp.source.ptr = st;
        dp.read_callback = read_data;
        if (!end && !st) { free(nv); return NGHTTP2_ERR_NOMEM; }
        rv = nghttp2_submit_request(sh->s, NULL, nv, count, end ? NULL : &dp, st);
        free(nv);
        if (st) {
            if (rv < 0) unlink_stream(sh, st);
            else { st->sid = rv; st->dp_active = 1; }
        }
        return rv;
    }
    sstream *st = lookup(sh, sid);
    if (st && (st->dp_active || st->len > st->off)) { /* trailers behind queued DATA */
        free(nv);
        if (st->eof) return NGHTTP2_ERR_STREAM_SHUT_WR;
        st->trailers = malloc(len);
        if (!st->trailers) return NGHTTP2_ERR_NOMEM;
        memcpy(st->trailers, nvbuf, len);
        st->tlen = len;
        st->eof = 1;
        return kick(sh, sid, st);
    }
    rv = nghttp2_submit_headers(sh->s, end ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, sid, NULL, nv, count,
                                NULL);
    free(nv);
    return rv;
}

/* Bytes the peer lets us send on `sid` now, less what is queued for it. */
int32_t shim_window(shim *sh, int32_t sid) {
    sstream *st = lookup(sh, sid);
    int32_t w = nghttp2_session_get_stream_remote_window_size(sh->s, sid);
    int32_t c = nghttp2_session_get_remote_window_size(sh->s);
    if (w < 0) { /* a request not sent yet: the peer's initial window */
        if (!st) return 0;
        w = (int32_t)nghttp2_session_get_remote_settings(sh->s, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    }
    if (c < w) w = c;
    if (st) w -= (int32_t)(st->len - st->off);
    return w > 0 ? w : 0;
}

int shim_consume(shim *sh, int32_t sid, size_t n) {
    return nghttp2_session_consume(sh->s, sid, n);
}

int shim_reset(shim *sh, int32_t sid, uint32_t code) {
    return nghttp2_submit_rst_stream(sh->s, NGHTTP2_FLAG_NONE, sid, code);
}

int shim_settings(shim *sh, int32_t window, int32_t max_streams, int32_t push, int32_t conn_window) {
    nghttp2_settings_entry iv[3];
    int n = 0;
    iv[n].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE; iv[n++].value = (uint32_t)window;
    if (max_streams >= 0) { iv[n].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS; iv[n++].value = max_streams; }
    if (push >= 0) { iv[n].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH; iv[n++].value = push; }
    int rv = nghttp2_submit_settings(sh->s, NGHTTP2_FLAG_NONE, iv, n);
    if (rv) return rv;
    return nghttp2_session_set_local_window_size(sh->s, NGHTTP2_FLAG_NONE, 0, conn_window);
}

int shim_upgrade(shim *sh, const char *settings, size_t len) {
    return nghttp2_session_upgrade2(sh->s, (const uint8_t *)settings, len, 0, NULL);
}

int shim_goaway(shim *sh, int32_t last_sid, uint32_t code, const char *data, size_t len) {
    return nghttp2_submit_goaway(sh->s, NGHTTP2_FLAG_NONE, last_sid, code, (const uint8_t *)data, len);
}

int32_t shim_last_stream(shim *sh) { return nghttp2_session_get_last_proc_stream_id(sh->s); }
uint32_t shim_remote_max_streams(shim *sh) {
    return nghttp2_session_get_remote_settings(sh->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}
int shim_want_read(shim *sh) { return nghttp2_session_want_read(sh->s); }

/* Feed bytes; the events are in ev/buf afterwards (a header block still open keeps its fields). */
int shim_recv(shim *sh, const char *data, size_t len) {
    size_t late = sh->ev_len - sh->ev_delivered; /* (payload-free records a send added, not read yet) */
    memmove(sh->ev, sh->ev + sh->ev_delivered * 5, late * 5 * sizeof(int32_t));
    sh->ev_len = late;
    sh->ev_delivered = 0;
    if (sh->hdr_open) {
        memmove(sh->buf, sh->buf + sh->hdr_start, sh->buf_len - sh->hdr_start);
        sh->buf_len -= sh->hdr_start;
        sh->hdr_start = 0;
    } else {
        sh->buf_len = 0;
    }
    ssize_t rv = nghttp2_session_mem_recv(sh->s, (const uint8_t *)data, len);
    sh->ev_delivered = sh->ev_len; /* Python reads them all now */
    return rv < 0 ? (int)rv : 0;
}

/* Everything nghttp2 queued, serialized into out (out_len bytes); a negative error code on failure. */
int shim_send(shim *sh) {
    sh->out_len = 0;
    for (;;) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(sh->s, &p);
        if (n < 0) return (int)n;
        if (n == 0) return 0;
        if (put((char **)&sh->out, &sh->out_len, &sh->out_cap, p, n)) return NGHTTP2_ERR_NOMEM;
    }
}

shim *shim_new(int server) {
    shim *sh = calloc(1, sizeof(shim));
    if (!sh) return NULL;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb)) { free(sh); return NULL; }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_frame_not_send);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    int rv = server ? nghttp2_session_server_new2(&sh->s, cb, sh, opt)
                    : nghttp2_session_client_new2(&sh->s, cb, sh, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv) { free(sh); return NULL; }
    return sh;
}

void shim_del(shim *sh) {
    nghttp2_session_del(sh->s);
    while (sh->streams) unlink_stream(sh, sh->streams);
    free(sh->ev);
    free(sh->buf);
    free(sh->out);
    free(sh);
}

const char *shim_strerror(int code) { return nghttp2_strerror(code); }
const char *shim_version(void) { return nghttp2_version(0)->version_str; }
