--[[ Jobs join a batch, or leave it, on the batch's slot (a Redis Cluster's: api/producer.py, before
  it stores them on their queue's slot; one Redis joins them in the enqueue script). Joining
  before the jobs exist keeps a sealed batch from completing before their outcomes reach it;
  jobs the enqueue then refused leave it, which may complete it.
  Input:
    KEYS[1] the batch's hash (keys.Layout.batch, in the batch's own slot): its job set is named
      from it
    KEYS[2] the batch's set of callbacks due (keys.Layout.batches_due)
    ARGV[1] batch id
    ARGV[2] 'join' or 'leave'
    ARGV[3] now (unix time)
    ARGV[4...] job ids
  Output:
    {n, due}: n the jobs that joined (an id already a job of the batch joins once) or left, due
      the number of the batch's callbacks due
    Refusal.UNKNOWN_BATCH the batch does not exist: nothing written
    Refusal.BATCH_COMPLETE it is complete, and takes no job: nothing written
]]
--- @include "lib"
local k = {batch = KEYS[1], batches_due = KEYS[2]}
local batch, now = ARGV[1], tonumber(ARGV[3])
local ids = {unpack(ARGV, 4)}
if redis.call('TYPE', k.batch).ok ~= 'hash' then return Refusal.UNKNOWN_BATCH end  -- another tool's key is none
local n = 0
if ARGV[2] == 'join' then
  local state = batch_state(k, batch)
  if not state[1] then return Refusal.UNKNOWN_BATCH end
  if state[2] == '1' then return Refusal.BATCH_COMPLETE end
  if #ids > 0 then n = batch_joined(k, batch, ids) end
elseif #ids > 0 then
  n = redis.call('SREM', k.batch .. ':jobs', unpack(ids))
  incr(k.batch, 'total', -n)
  incr(k.batch, 'pending', -n)
  batch_check(k, batch, now)
end
return {n, redis.call('ZCARD', k.batches_due)}
