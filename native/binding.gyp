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
      "variables": {
        "has_isal": "<!(test -f /usr/include/isa-l/igzip_lib.h && echo 1 || echo 0)",
        "has_zstd": "<!(test -f /usr/include/zstd.h && echo 1 || echo 0)"
      },
      "sources": ["deflate.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-ldeflate"],
      "conditions": [
        ["has_isal==1", { "defines": ["HAVE_ISAL"], "libraries": ["-lisal"] }],
        ["has_zstd==1", { "defines": ["HAVE_ZSTD"], "libraries": ["-lzstd"] }]
      ]
    },
    {
      "target_name": "ply-client",
      "type": "executable",
      "sources": ["ply_client.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
