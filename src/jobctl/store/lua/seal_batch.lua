--[[ Seal a batch (api/batches.py: its `with` block ended): from now on it completes once
  nothing of it is pending, at once if nothing is (an empty batch, or one whose jobs all ended
  already); a job of the batch may still add jobs to it while it runs.
  Input:
    KEYS[1] 'jobctl:batch:' prefix: the batch's hash (on a cluster the hash itself, in the
      batch's own slot: keys.Layout.batch)
    KEYS[2] 'jobctl:batches-due' set of batch callbacks due (on a cluster the batch's)
    ARGV[1] batch id
    ARGV[2] now (unix time)
  Output:
    1 sealed (again: nothing changes); on a cluster 1 + the number of the batch's callbacks due
    Refusal.UNKNOWN_BATCH there is no such batch: nothing written
]]
--- @include "lib"
local k = {batch = KEYS[1], batches_due = KEYS[2]}
local batch = ARGV[1]
if redis.call('TYPE', batch_key(k, batch)).ok ~= 'hash' then return Refusal.UNKNOWN_BATCH end  -- another tool's key is none
redis.call('HSET', batch_key(k, batch), 'sealed', 1)
batch_check(k, batch, tonumber(ARGV[2]))
if CLUSTER then return 1 + redis.call('ZCARD', k.batches_due) end
return 1
