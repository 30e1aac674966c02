{
  "targets": [
    {
      "target_name": "ply_native",
      "sources": ["ply_native.c", "netlink.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    },
    {
      "target_name": "ply_deflate",
      "sources": ["deflate.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-ldeflate"]
    },
    {
      "target_name": "ply-client",
      "type": "executable",
      "sources": ["ply_client.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
