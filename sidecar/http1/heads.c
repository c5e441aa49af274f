/* sidecar.http1._heads: the simple shapes of HTTP/1 heads (sidecar/http1/simple.py) recognised in C.

Each function accepts exactly what its reference in simple.py accepts (simple_request_re, simple_response_re:
regular expressions) and returns the same values; tests/unit/test_sidecar_http1_heads.py checks both on a
table of heads (hostile ones included) and on generated ones. Anything outside the simple shape gives None
and the caller takes the general path (llhttp), as with the regular expressions. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define C_TOKEN 1  /* tchar (RFC 9110) */
#define C_VALUE 2  /* a header value's byte: HTAB, SP, VCHAR, obs-text */
#define C_TARGET 4 /* an origin-form target's byte after its "/" (a subset of what llhttp accepts) */
#define C_SPACE 8  /* SP or HTAB */

static unsigned char cls[256];
static PyObject *methods[7];
static const char *const method_names[7] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};

static void init_classes(void) {
    const char *tok = "!#$%&'*+-.^_`|~";
    const char *tgt = "-._~%!$&'()*+,;=:@/?";
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        int alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (alnum || (c && strchr(tok, c)))
            k |= C_TOKEN;
        if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80)
            k |= C_VALUE;
        if (alnum || (c && strchr(tgt, c)))
            k |= C_TARGET;
        if (c == ' ' || c == '\t')
            k |= C_SPACE;
        cls[c] = k;
    }
}

/* s[0:n] equals the lower-case `lit`, ASCII letters compared without case (as re.IGNORECASE on bytes) */
static int name_is(const unsigned char *s, Py_ssize_t n, const char *lit) {
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (lit[i] == '\0' || (unsigned char)lit[i] != c)
            return 0;
    }
    return lit[i] == '\0';
}

static int name_in(const unsigned char *s, Py_ssize_t n, const char *const *names) {
    for (; *names; names++)
        if (name_is(s, n, *names))
            return 1;
    return 0;
}

/* request headers the general path rewrites, or that give the request a body or a special meaning */
static const char *const request_special[] = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    "proxy-authenticate", "proxy-authorization", "content-length", "expect", "x-forwarded-for",
    "x-forwarded-proto", "x-forwarded-host", "forwarded", NULL};
/* response headers that change framing or the connection (Content-Length, Connection and Keep-Alive are
   handled on their own) */
static const char *const response_special[] = {
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authenticate",
    "proxy-authorization", NULL};

/* a token at p (at least one byte), then ':'; returns the colon's position or NULL */
static const unsigned char *scan_name(const unsigned char *p, const unsigned char *end) {
    const unsigned char *q = p;
    while (q < end && (cls[*q] & C_TOKEN))
        q++;
    if (q == p || q >= end || *q != ':')
        return NULL;
    return q;
}

/* value bytes from p, then CRLF; returns the CR's position or NULL */
static const unsigned char *scan_value(const unsigned char *p, const unsigned char *end) {
    while (p < end && (cls[*p] & C_VALUE))
        p++;
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return NULL;
    return p;
}

/* simple_request(data) -> (method, the last Host's value or None) or None */
static PyObject *simple_request(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "simple_request() wants bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(arg);
    const unsigned char *end = p + PyBytes_GET_SIZE(arg);
    int m;
    for (m = 0; m < 7; m++) {
        size_t n = strlen(method_names[m]);
        if ((size_t)(end - p) > n && memcmp(p, method_names[m], n) == 0 && p[n] == ' ') {
            p += n + 1;
            break;
        }
    }
    if (m == 7 || p >= end || *p != '/')
        Py_RETURN_NONE;
    p++;
    while (p < end && (cls[*p] & C_TARGET))
        p++;
    if (end - p < 11 || memcmp(p, " HTTP/1.1\r\n", 11) != 0)
        Py_RETURN_NONE;
    p += 11;
    const unsigned char *host = NULL, *host_end = NULL;
    for (;;) {
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        const unsigned char *colon = scan_name(p, end);
        if (colon == NULL)
            Py_RETURN_NONE;
        int is_host = name_is(p, colon - p, "host");
        if (!is_host && name_in(p, colon - p, request_special))
            Py_RETURN_NONE;
        /* ": " and a value that is empty or starts with neither SP nor HTAB */
        const unsigned char *v = colon + 1;
        if (v >= end || *v != ' ')
            Py_RETURN_NONE;
        v++;
        if (v < end && (*v == ' ' || *v == '\t'))
            Py_RETURN_NONE;
        const unsigned char *cr = scan_value(v, end);
        if (cr == NULL)
            Py_RETURN_NONE;
        if (is_host) {
            host = v;
            host_end = cr;
        }
        p = cr + 2;
    }
    if (p != end)
        Py_RETURN_NONE;
    PyObject *method = methods[m];
    if (host == NULL)
        return PyTuple_Pack(2, method, Py_None);
    PyObject *h = PyBytes_FromStringAndSize((const char *)host, host_end - host);
    if (h == NULL)
        return NULL;
    PyObject *res = PyTuple_Pack(2, method, h);
    Py_DECREF(h);
    return res;
}

/* simple_response(data) -> (status, the bytes for the client, Content-Length) or None */
static PyObject *simple_response(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "simple_response() wants bytes");
        return NULL;
    }
    const unsigned char *start = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    const unsigned char *p = start, *end = start + size;
    if (size < 14 || memcmp(p, "HTTP/1.1 2", 10) != 0 || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9')
        Py_RETURN_NONE;
    long status = 200 + (p[10] - '0') * 10 + (p[11] - '0');
    p += 12;
    if (*p == ' ') {
        p = scan_value(p + 1, end);
        if (p == NULL)
            Py_RETURN_NONE;
    } else if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
        Py_RETURN_NONE;
    }
    p += 2;
    /* the spans of the hop-by-hop lines to drop: at most two before Content-Length, two after */
    const unsigned char *drop[4][2];
    int ndrop = 0, before = 0, after = 0, have_length = 0;
    long long length = 0;
    for (;;) {
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        const unsigned char *line = p;
        const unsigned char *colon = scan_name(p, end);
        if (colon == NULL)
            Py_RETURN_NONE;
        Py_ssize_t n = colon - p;
        const unsigned char *v = colon + 1;
        if (name_is(p, n, "content-length")) {
            if (have_length)
                Py_RETURN_NONE;
            have_length = 1;
            while (v < end && (cls[*v] & C_SPACE))
                v++;
            int digits = 0;
            while (v < end && *v >= '0' && *v <= '9') {
                if (++digits > 15)
                    Py_RETURN_NONE;
                length = length * 10 + (*v - '0');
                v++;
            }
            if (digits < 1)
                Py_RETURN_NONE;
            while (v < end && (cls[*v] & C_SPACE))
                v++;
            if (end - v < 2 || v[0] != '\r' || v[1] != '\n')
                Py_RETURN_NONE;
            p = v + 2;
            continue;
        }
        int hop = 0;
        if (name_is(p, n, "connection")) {
            while (v < end && (cls[*v] & C_SPACE))
                v++;
            if (end - v < 10 || !name_is(v, 10, "keep-alive"))
                Py_RETURN_NONE;
            v += 10;
            while (v < end && (cls[*v] & C_SPACE))
                v++;
            if (end - v < 2 || v[0] != '\r' || v[1] != '\n')
                Py_RETURN_NONE;
            p = v + 2;
            hop = 1;
        } else {
            if (name_in(p, n, response_special))
                Py_RETURN_NONE;
            hop = name_is(p, n, "keep-alive");
            const unsigned char *cr = scan_value(v, end);
            if (cr == NULL)
                Py_RETURN_NONE;
            p = cr + 2;
        }
        if (hop) {
            if ((have_length ? ++after : ++before) > 2)
                Py_RETURN_NONE;
            drop[ndrop][0] = line;
            drop[ndrop][1] = p;
            ndrop++;
        }
    }
    if (!have_length || end - p != length || status == 204)
        Py_RETURN_NONE;
    PyObject *out;
    if (ndrop == 0) {
        Py_INCREF(arg);
        out = arg;
    } else {
        Py_ssize_t dropped = 0;
        for (int i = 0; i < ndrop; i++)
            dropped += drop[i][1] - drop[i][0];
        out = PyBytes_FromStringAndSize(NULL, size - dropped);
        if (out == NULL)
            return NULL;
        char *w = PyBytes_AS_STRING(out);
        const unsigned char *r = start;
        for (int i = 0; i < ndrop; i++) {
            memcpy(w, r, drop[i][0] - r);
            w += drop[i][0] - r;
            r = drop[i][1];
        }
        memcpy(w, r, end - r);
    }
    PyObject *res = Py_BuildValue("(lNL)", status, out, length);
    return res;
}

static PyMethodDef heads_methods[] = {
    {"simple_request", simple_request, METH_O,
     "(method, the last Host's value) if data is one whole request head of the simple shape, else None"},
    {"simple_response", simple_response, METH_O,
     "(status, the bytes for the client, Content-Length) if data is one whole simple response, else None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef heads_module = {
    PyModuleDef_HEAD_INIT, "_heads", "The simple shapes of HTTP/1 heads, in C (see simple.py).", -1,
    heads_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__heads(void) {
    init_classes();
    for (int m = 0; m < 7; m++) {
        if (methods[m] == NULL) {
            methods[m] = PyBytes_FromString(method_names[m]);
            if (methods[m] == NULL)
                return NULL;
        }
    }
    return PyModule_Create(&heads_module);
}
