# node-gyp build of the native backend (vera_native.node): N-API, C++17, oneDNN sgemm and bf16 matmul, OpenMP.
# -ffp-contract=off: arithmetic written in double must round like the js backend's (fma is explicit);
# -fno-math-errno lets sqrt vectorise (nothing reads errno).
# VERA_NATIVE_ARCH overrides -march (default: native), e.g. VERA_NATIVE_ARCH=x86-64-v3 for portable builds.
{
  "targets": [
    {
      "target_name": "vera_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/names.cc",
        "native/src/buffers.cc",
        "native/src/copy.cc",
        "native/src/elementwise.cc",
        "native/src/reduce.cc",
        "native/src/matmul.cc",
        "native/src/matmul_bf16.cc",
        "native/src/matmul_dnnl.cc",
        "native/src/softmax.cc",
        "native/src/norm.cc",
        "native/src/embedding.cc",
        "native/src/attention.cc",
        "native/src/loss.cc",
        "native/src/rope.cc",
        "native/src/dropout.cc",
        "native/src/adamw.cc",
        "native/src/scale.cc"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
      "cflags": ["-O3", "-march=<!(node -p \"process.env.VERA_NATIVE_ARCH||'native'\")", "-fopenmp", "-Wall", "-Wextra"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-mprefer-vector-width=512", "-ffp-contract=off", "-fno-math-errno"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"]
    }
  ]
}
