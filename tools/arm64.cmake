# SPDX-License-Identifier: MIT
# CMake toolchain file: coil for arm64 (aarch64 Linux) with Debian's cross compiler
# (gcc-aarch64-linux-gnu) and the arm64 libraries installed beside the amd64 ones (multiarch);
# tests run under qemu-user. pkg-config sees only arm64 .pc files: Debian's multiarch ones, and
# jemalloc's from COIL_ARM64_SYSROOT (its -dev package is not Multi-Arch: same, so tools/arm64
# extracts it there instead of installing it). Optional modules whose arm64 -dev package is not
# installed are left out, as in a native build without it. tools/arm64 sets all of this up.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

set(COIL_ARM64_SYSROOT "${CMAKE_BINARY_DIR}/sysroot" CACHE PATH
    "Private sysroot holding jemalloc's arm64 packages (written by tools/arm64)")
# try_compile projects read this file again, in this process, from a directory of their own:
# they must set the same path.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES COIL_ARM64_SYSROOT)
set(ENV{PKG_CONFIG_LIBDIR}
    "${COIL_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig")
