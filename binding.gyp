{
  "targets": [
    {
      "target_name": "fdutil",
      "sources": ["native/fdutil.c"],
      "cflags": ["-Wall", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
