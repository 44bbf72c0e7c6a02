// tinycpp: a C++ extension (std::string, std::vector, exceptions: libstdc++ is linked) whose
// machine() says what it was compiled for and joined() exercises the C++ runtime.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

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

static PyObject *machine(PyObject *, PyObject *) { return PyUnicode_FromString(MACHINE); }

static PyObject *joined(PyObject *, PyObject *) {
    std::vector<std::string> parts{"c", "+", "+"};
    try {
        if (parts.size() != 3) throw std::runtime_error("unexpected");
        std::string text = std::accumulate(parts.begin(), parts.end(), std::string());
        return PyUnicode_FromString(text.c_str());
    } catch (const std::exception &error) {
        PyErr_SetString(PyExc_RuntimeError, error.what());
        return nullptr;
    }
}

static PyMethodDef methods[] = {
    {"machine", machine, METH_NOARGS, "The architecture this module was compiled for."},
    {"joined", joined, METH_NOARGS, "A string built with the C++ standard library."},
    {nullptr, nullptr, 0, nullptr},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tinycpp", nullptr, -1, methods};

PyMODINIT_FUNC PyInit_tinycpp(void) { return PyModule_Create(&module); }
