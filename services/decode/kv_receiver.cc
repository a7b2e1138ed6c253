#include "services/decode/kv_receiver.h"

#include "engine/transfer/kv_block_layout.h"
#include "engine/util/status.h"

namespace cleave {

absl::StatusOr<std::unique_ptr<KvReceiver>> KvReceiver::Create(const KvStorage& storage,
                                                               const UcxAgentOptions& options,
                                                               std::string instance) {
  std::unique_ptr<KvReceiver> r(new KvReceiver());
  ASSIGN_OR_RETURN(r->agent_, UcxAgent::Create(options));
  const KvStorageShape& shape = storage.shape();
  ASSIGN_OR_RETURN(std::string descriptor, r->agent_->RegisterMemory(KvStorageRegions(storage)));
  r->template_.set_num_layers(shape.num_layers);
  r->template_.set_num_blocks(shape.num_blocks);
  r->template_.set_ucx_address(r->agent_->address());
  r->template_.set_memory_descriptor(std::move(descriptor));
  r->template_.set_block_size(shape.block_size);
  r->template_.set_num_kv_heads(shape.num_kv_heads);
  r->template_.set_head_dim(shape.head_dim);
  r->template_.set_decode_instance(std::move(instance));
  return r;
}

v1::KvTarget KvReceiver::Target(const std::vector<int>& blocks) const {
  v1::KvTarget t = template_;
  for (int b : blocks) t.add_block_ids(b);
  return t;
}

}  // namespace cleave
