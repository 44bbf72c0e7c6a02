/* tinyext: machine() returns the architecture this extension was compiled for. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
#else
#  define MACHINE "other"
#endif

static PyObject *machine(PyObject *self, PyObject *args) {
    return PyUnicode_FromString(MACHINE);
}

static PyMethodDef methods[] = {
    {"machine", machine, METH_NOARGS, "The architecture this module was compiled for."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tinyext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_tinyext(void) { return PyModule_Create(&module); }
