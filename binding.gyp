{
  "targets": [
    {
      "target_name": "fdutil",
      "sources": ["native/fdutil.c", "native/launch.c", "native/accept.c", "native/shm.c", "native/unix.c"],
      "cflags": ["-Wall", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
