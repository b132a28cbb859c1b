--[[ A `with jobctl.breaker(name):` block (api/breakers.py): may it run, and how it ended.
  Input:
    KEYS[1] the breaker's hash (keys.breaker; its failures zset is built from it)
    KEYS[2] 'rq:worker:' prefix: the hashes of the workers holding trials
    KEYS[3] 'jobctl:active:' prefix: their in-flight lists
    KEYS[4] 'jobctl:breaker:' prefix: circuit breakers' hashes
    ARGV[1] 'enter' or 'record'
    ARGV[2] the job running the block ('' outside a job: it never holds the trial)
    ARGV[3] that job's worker
    ARGV[4] now (unix time)
    ARGV[5] the breaker's "failures window cooldown" (limits.py)
    ARGV[6] for 'record': '1' a failure the breaker counts, '0' any other end
  Output:
    enter: '0' the block may run (half-open: as the trial), else when it may, a unix time
    record: 'opened <name>', 'closed <name>' or ''
]]
--- @include "lib"
local key, id, worker, now = KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local k = {worker = KEYS[2], active = KEYS[3], breaker = KEYS[4]}
if not breaker_hash(key) then return ARGV[1] == 'enter' and '0' or '' end  -- not a breaker's hash: none
if ARGV[1] == 'enter' then
  local wait = breaker_wait(k, key, id, now)
  if wait > 0 then return tostring(wait) end
  if id ~= '' then breaker_start(k, key, id, worker) end
  return '0'
end
local settings = {['breaker:' .. string.sub(key, #k.breaker + 1)] = ARGV[5]}
return breaker_outcome(k, key, settings, id, ARGV[6] == '1', now)
