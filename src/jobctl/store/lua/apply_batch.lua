--[[ Apply one batch entry of an outbox on the batch's slot (a Redis Cluster's; the promoter,
  transitions.py's deliver): a job of the batch, of some queue, ended for good or was brought
  back from the dead (batch_apply in lib.lua). Applied again, an entry changes nothing.
  Input:
    KEYS[1] the batch's hash (keys.Layout.batch, in the batch's own slot): its sets are named
      from it
    KEYS[2] the batch's set of callbacks due (keys.Layout.batches_due)
    ARGV[1] the entry (JSON: kind 'batch', op 'succeeded'|'failed'|'reopened', job, batch)
    ARGV[2] now (unix time)
  Output:
    {changed, due}: changed 1 if the entry changed something, 0 if it was applied before (or is
    no entry: nothing written); due the number of the batch's callbacks due
]]
--- @include "lib"
local k = {batch = KEYS[1], batches_due = KEYS[2]}
local ok, entry = pcall(cjson.decode, ARGV[1])
local changed = 0
if ok and type(entry) == 'table' and type(entry.job) == 'string' and type(entry.batch) == 'string' then
  changed = batch_apply(k, entry, tonumber(ARGV[2]))
end
return {changed, redis.call('ZCARD', k.batches_due)}
