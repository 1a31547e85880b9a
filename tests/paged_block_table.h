// The paged KV layout every decode attention test uses: each sequence's
// ceil(len / block_tokens) blocks taken in order from a shuffled permutation of
// the used blocks plus two spare ones (which belong to no sequence), unused
// table entries -1, as a long-running server's cache is scattered. Plain C++,
// shared by the backend tests (kernel_test_util.h) and the emulated ones.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace pdsim::kernels::test {

struct PagedBlockTable {
  int max_blocks = 1;                // table columns: the longest sequence's blocks (at least 1)
  int num_blocks = 0;                // physical blocks: used + 2 spare
  std::vector<std::int32_t> table;   // (sequences, max_blocks)
};

inline PagedBlockTable shuffled_block_table(const std::vector<std::int32_t>& lens, int block_tokens,
                                            std::mt19937& rng) {
  PagedBlockTable t;
  int used = 0;
  for (int l : lens) {
    t.max_blocks = std::max(t.max_blocks, (l + block_tokens - 1) / block_tokens);
    used += (l + block_tokens - 1) / block_tokens;
  }
  t.num_blocks = used + 2;
  std::vector<std::int32_t> perm(t.num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  t.table.assign(lens.size() * static_cast<std::size_t>(t.max_blocks), -1);
  int next = 0;
  for (std::size_t s = 0; s < lens.size(); ++s)
    for (int i = 0; i < (lens[s] + block_tokens - 1) / block_tokens; ++i)
      t.table[s * t.max_blocks + i] = perm[next++];
  return t;
}

}  // namespace pdsim::kernels::test
