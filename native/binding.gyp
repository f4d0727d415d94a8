{
  "targets": [
    {
      "target_name": "lifeboat_fs",
      "sources": ["lifeboat_fs.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
