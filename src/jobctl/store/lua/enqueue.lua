-- ARGV: the arguments by name (JSON: id, queue, run_at, unique_claim, parents, now, now_iso,
--       run_claim, run_claim_owner, run_claim_ttl, unique_ttl, max_size), then field, value, ...
--       of the record (a payload is bytes: it does not travel in JSON).
-- run_claim (the scheduler's claim on one due time of a recurring entry, '' for none) is taken
-- here, with the enqueue, so that a claim is never held by a run that was not stored.
-- unique_ttl > 0: the unique claim is held that long, whatever becomes of the job (Sidekiq's
-- unique_for); 0: while the job is active. max_size > 0: refused when the queue holds as many.
local args = cjson.decode(ARGV[1])
local id, queue, run_at, claim = args.id, args.queue, args.run_at, args.unique_claim
local parents, now, now_iso = args.parents, args.now, args.now_iso
local run_claim, run_claim_owner, run_claim_ttl = args.run_claim, args.run_claim_owner, args.run_claim_ttl
local unique_ttl, max_size = args.unique_ttl, args.max_size
local key = job_key(id)

if max_size > 0 then
  local queued = redis.call('LLEN', queue_key(queue))
  if queued >= max_size then return {'full', '', tostring(queued)} end
end

if run_claim ~= '' and not redis.call('SET', run_claim, run_claim_owner, 'NX', 'EX', run_claim_ttl) then
  return {'claimed', redis.call('GET', run_claim) or '', ''}
end

local status = redis.call('HGET', key, 'status')
if status and ACTIVE[status] then return {'exists', id, status} end
if claim ~= '' then
  local holder = redis.call('GET', claim)
  if holder and unique_ttl > 0 then return {'recent', holder, tostring(redis.call('TTL', claim))} end
  if holder then
    local held = hget(holder, 'status')
    if held and ACTIVE[held] then return {'duplicate', holder, held} end
  end
end
for _, parent in ipairs(parents) do
  if redis.call('EXISTS', job_key(parent)) == 0 then return {'unknown_parent', parent, ''} end
end

if status then
  -- the id is reused after its job ended: forget the old run, in its registries and in this
  -- queue's (a record whose origin was changed since, or lost, names another)
  local old_queue = redis.call('HGET', key, 'origin') or queue
  for _, registry in ipairs({'finished', 'failed', 'canceled'}) do
    redis.call('ZREM', ended_key(registry, old_queue), id)
    redis.call('ZREM', ended_key(registry, queue), id)
  end
  redis.call('DEL', key, results_key(id), dependencies_key(id), old_dependencies_key(id))
end

local fields = {}
for i = 2, #ARGV do table.insert(fields, ARGV[i]) end
redis.call('HSET', key, unpack(fields))
if claim ~= '' and unique_ttl > 0 then
  redis.call('SET', claim, id, 'EX', math.ceil(unique_ttl))
elseif claim ~= '' then
  redis.call('SET', claim, id)
  redis.call('HSET', key, 'jobctl_unique', claim)
end

if #parents > 0 then
  for _, parent in ipairs(parents) do
    redis.call('SADD', dependencies_key(id), parent)
    redis.call('SADD', dependents_key(parent), id)
    -- the parent's outcome script settles its dependents only when this flag says it has some
    redis.call('HSET', job_key(parent), 'jobctl_dependents', 1)
  end
  local verdict, culprit = parents_verdict(id)
  if verdict == 'doomed' then
    cancel_for_parent(id, culprit, now, now_iso)
    return {'ok', id, 'canceled'}
  elseif verdict == 'waiting' then
    redis.call('HSET', key, 'status', 'deferred')
    redis.call('ZADD', deferred_key(queue), '+inf', id)
    return {'ok', id, 'deferred'}
  end
end

if run_at > now then
  redis.call('HSET', key, 'status', 'scheduled', 'jobctl_scheduled_for', run_at)
  redis.call('ZADD', scheduled_key(queue), run_at, id)
  redis.call('SADD', QUEUES, queue_key(queue))  -- the promoter looks at every known queue
  return {'ok', id, 'scheduled'}
end
push_queued(id, queue, now_iso, false)
return {'ok', id, 'queued'}
