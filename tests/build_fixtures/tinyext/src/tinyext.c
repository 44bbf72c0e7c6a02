/* tinyext: machine() returns the architecture this extension was compiled for; byteorder()
 * and word() show the byte order its code runs with (wrong on a big-endian target if the
 * build mixed up byte orders). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef TINYEXT_BREAK
#  define TINYEXT_OK 1
#else
#  error "TINYEXT_BREAK is set: this build fails on purpose (prewheel's failure tests)"
#endif

#if defined(__x86_64__)
#  define MACHINE "x86_64"
#elif defined(__aarch64__)
#  define MACHINE "aarch64"
#elif defined(__ARM_ARCH_7A__)
#  define MACHINE "armv7"
#elif defined(__arm__)
#  define MACHINE "arm"
#elif defined(__s390x__)
#  define MACHINE "s390x"
#elif defined(__i386__)
#  define MACHINE "i386"
#elif defined(__riscv) && __riscv_xlen == 64
#  define MACHINE "riscv64"
#else
#  define MACHINE "other"
#endif

static PyObject *machine(PyObject *self, PyObject *args) {
    return PyUnicode_FromString(MACHINE);
}

/* "big" or "little": how this CPU stores a 32-bit integer, as the code sees it at run time. */
static PyObject *byteorder(PyObject *self, PyObject *args) {
    const uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return PyUnicode_FromString(first ? "little" : "big");
}

/* The first four bytes of a bytes object read as one native 32-bit unsigned integer. */
static PyObject *word(PyObject *self, PyObject *arg) {
    uint32_t value;
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) < 4) {
        PyErr_SetString(PyExc_ValueError, "word() takes at least four bytes");
        return NULL;
    }
    memcpy(&value, PyBytes_AS_STRING(arg), 4);
    return PyLong_FromUnsignedLong(value);
}

static PyMethodDef methods[] = {
    {"machine", machine, METH_NOARGS, "The architecture this module was compiled for."},
    {"byteorder", byteorder, METH_NOARGS, "The byte order of this CPU: big or little."},
    {"word", word, METH_O, "Four bytes read as a native 32-bit unsigned integer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tinyext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_tinyext(void) { return PyModule_Create(&module); }
