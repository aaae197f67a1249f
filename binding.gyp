{
  "targets": [
    {
      "target_name": "fdutil",
      "sources": ["native/fdutil.c"],
      "cflags": ["-Wall", "-O2"]
    }
  ]
}
