// The shared-memory tiles of the CUDA integer GEMM (qgemm_cuda.cu): their shapes and the word
// each thread reads, in one place, so a CPU test can check the kernel's bank arithmetic
// without a GPU (tests/qgemm_cuda_tiles_test.cpp).
//
// A thread block of kTile x kTile threads (tx: output channel, ty: output row) stages per
// 64-wide K block a_tile (kTile rows x kWords words of 4 activation bytes) and w_tile (kTile
// channels x kWords words of 4 weight codes). In the dot-product loop, for word `word`, thread
// (tx, ty) reads a_tile[ty][word] (a broadcast: ty is shared by 16 threads of a warp) and
// w_tile[tx][word]. With rows of 16 words, channels tx and tx + 2 would fall on the same bank
// (32 banks of 4 bytes): an 8-way conflict. Rows of 17 words put the 16 channels on 16
// different banks.
#pragma once

#ifdef __CUDACC__
#define QDM_HOST_DEVICE __host__ __device__
#else
#define QDM_HOST_DEVICE
#endif

namespace qdm::cuda_tiles {

constexpr int kTile = 16;              // threads per side of a block; output rows and channels per block
constexpr int kWords = 64 / 4;         // 4-byte words per 64-wide K block
constexpr int kWRowWords = kWords + 1; // w_tile row pitch: padded by one word (bank conflicts)
constexpr int kBanks = 32;

// Word offset of w_tile[channel][word] and a_tile[row][word] in their shared arrays.
QDM_HOST_DEVICE constexpr int w_word(int channel, int word) { return channel * kWRowWords + word; }
QDM_HOST_DEVICE constexpr int a_word(int row, int word) { return row * kWords + word; }

}  // namespace qdm::cuda_tiles
