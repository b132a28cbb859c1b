--[[ The in-flight jobs, among the given workers', that ran past their deadline (their timeout, or
  the moment an operator asked to stop them) by more than a grace period: the timeout itself,
  within 1-10 s, so that a 1 s job is not given 10 s more. Their worker is killed: the job
  ignored the exception it was sent (stuck in C code, or a blocking call in a thread).
  Input:
    KEYS[1] 'rq:job:' prefix: the hashes of the in-flight jobs
    KEYS[2...] the in-flight list of each worker of ARGV[2...], in order
    ARGV[1] now (unix time)
    ARGV[2...] worker names
  Output:
    {worker, job id, seconds past the deadline, ...} flat
]]
--- @include "lib"
local now = tonumber(ARGV[1])
local overdue = {}
for i = 2, #ARGV do
  local worker = ARGV[i]
  for _, id in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do
    local job = redis.call('HMGET', KEYS[1] .. id, 'jobctl_deadline', 'timeout', 'status')
    local deadline = finite(job[1])
    if deadline and job[3] == 'started' then  -- a reserved job, not started yet, keeps an old attempt's deadline
      local grace = math.min(10, math.max(1, finite(job[2]) or 180))
      if now > deadline + grace then
        table.insert(overdue, worker)
        table.insert(overdue, id)
        table.insert(overdue, tostring(now - deadline))
      end
    end
  end
end
return overdue
