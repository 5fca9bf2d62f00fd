"""The Lua script the Redis target runs: one call per batch (projections.redis_target)."""

LUA = r"""
-- Mode 'cas' (a batch): KEYS[1] checkpoint key, KEYS[2] stream-seq key; for a worker's
--   partition (epoch given) KEYS[3] the partition's epoch key, KEYS[4] the context checkpoint.
--   ARGV: 'cas', expected checkpoint, key prefix, channel ('' for none), payload head, lease
--   epoch ('' for the single projector), then (position, stream seq, partition NN,
--   operations JSON) per event, positions increasing.
--   Events at or below the checkpoint are skipped (duplicates); so are events at or below
--   their partition's checkpoint (KEYS[1]:pNN, what workers applied) for the single
--   projector, and the context checkpoint covers every partition for a worker. The others
--   are applied in order. The checkpoint moves to the last one, and the payload head ..
--   position .. '}' is PUBLISHed on the channel, once per call. A worker's epoch below the
--   one that last wrote the partition is refused: {0, -4, ''}, nothing written (fencing).
--   Returns {n, 1, ''}: done (n new events); {0, -1, ''}: the checkpoint is not as expected
--   (nothing written); {n, -2, reason}: the (n+1)-th new event's bind found nothing (the n
--   before it applied, the checkpoint after them, nothing of it written); {n, -3, error}: a
--   command of that event failed (its commands before the failing one stay written, as they
--   would in a call of their own).
-- Mode 'once' (a retried dead letter): KEYS[1] retry marker; ARGV: 'once', '', key prefix, '',
--   '', position, '', operations JSON. Applies once, whatever the checkpoint.
local mode, prefix = ARGV[1], ARGV[3]
local vars
local function text(x)
  if type(x) == 'table' then return (string.gsub(x.t, '{([%w_]+)}', vars)) end
  return x
end
local function value(x)
  if type(x) ~= 'table' then return x end
  local v = vars[x.var]
  if x.neg and v ~= '0' then
    if string.sub(v, 1, 1) == '-' then return string.sub(v, 2) end
    return '-' .. v
  end
  return v
end
local function list_of(key, field)
  local raw = redis.call('HGET', key, field)
  if not raw then return {} end
  return cjson.decode(raw)
end
local function encode_list(items)
  if #items == 0 then return '[]' end
  -- cjson writes '/' as '\/'; plain '/' keeps the text equal to the SQL executor's JSON
  return (string.gsub(cjson.encode(items), '\\/', '/'))
end
local function apply(ops)
  vars = {}
  for _, op in ipairs(ops) do
    if op[1] == 'bind' then
      for i = 3, #op do
        local found = redis.call('HGET', prefix .. op[2], op[i])
        if not found then return op[2] .. ' has no ' .. op[i] end
        vars[op[i]] = found
      end
    end
  end
  for _, op in ipairs(ops) do
    local kind = op[1]
    if kind == 'set' and #op > 2 then
      local args = {}
      for i = 3, #op, 2 do
        args[#args + 1] = op[i]
        args[#args + 1] = value(op[i + 1])
      end
      redis.call('HSET', prefix .. text(op[2]), unpack(args))
    elseif kind == 'incr' then
      redis.call('HINCRBY', prefix .. text(op[2]), text(op[3]), value(op[4]))
    elseif kind == 'zincr' then
      redis.call('ZINCRBY', prefix .. text(op[2]), value(op[4]), text(op[3]))
    elseif kind == 'push' then
      local key = prefix .. text(op[2])
      local items = list_of(key, op[3])
      items[#items + 1] = op[4]
      redis.call('HSET', key, op[3], encode_list(items))
    elseif kind == 'pull' then
      local key = prefix .. text(op[2])
      local items = list_of(key, op[3])
      for i, item in ipairs(items) do
        if item == op[4] then
          table.remove(items, i)
          break
        end
      end
      redis.call('HSET', key, op[3], encode_list(items))
    end
  end
  return nil
end
if mode == 'once' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 1, ''} end
  local failed = apply(cjson.decode(ARGV[8]))
  if failed then return {0, -2, failed} end
  redis.call('SET', KEYS[1], '1')
  return {1, 1, ''}
end
local epoch = ARGV[6]
local ckpt = tonumber(redis.call('GET', KEYS[1]) or '0')
local floors = nil
if epoch ~= '' then
  if tonumber(redis.call('GET', KEYS[3]) or '0') > tonumber(epoch) then return {0, -4, ''} end
  local whole = tonumber(redis.call('GET', KEYS[4]) or '0')
  if whole > ckpt then ckpt = whole end
else
  floors = {}
end
local function floor_of(partition)
  if floors == nil then return 0 end
  local found = floors[partition]
  if found == nil then
    found = tonumber(redis.call('GET', KEYS[1] .. ':p' .. partition) or '0')
    floors[partition] = found
  end
  return found
end
local done, last, last_seq, checked = 0, nil, nil, false
local outcome, reason = 1, ''
for i = 7, #ARGV, 4 do
  local position = tonumber(ARGV[i])
  if position > ckpt then
    if not checked and ckpt ~= tonumber(ARGV[2]) then return {0, -1, ''} end
    checked = true
    if position > floor_of(ARGV[i + 2]) then
      local ok, failed = pcall(apply, cjson.decode(ARGV[i + 3]))
      if not ok then
        -- a command failed: stop before this event (the ones before it stay applied)
        outcome, reason = -3, type(failed) == 'table' and failed.err or tostring(failed)
        break
      elseif failed then
        outcome, reason = -2, failed
        break
      end
    end
    done, ckpt, last, last_seq = done + 1, position, ARGV[i], ARGV[i + 1]
  end
end
if last then
  redis.call('SET', KEYS[1], last)
  redis.call('SET', KEYS[2], last_seq)
  if epoch ~= '' then redis.call('SET', KEYS[3], epoch) end
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5] .. last .. '}') end
end
return {done, outcome, reason}
"""
