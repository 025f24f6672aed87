-- Drive gradlint's language server from Neovim's built-in client (0.7 and later), headless.
-- Arguments come in environment variables; the steps seen are written as JSON lines.
local out = assert(io.open(os.getenv("GRADLINT_NVIM_OUT"), "w"))
local function say(event, value)
  out:write(vim.fn.json_encode({ event = event, value = value }) .. "\n")
  out:flush()
end
local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("GRADLINT_NVIM_FILE")))
  local client = vim.lsp.start_client({
    name = "gradlint",
    cmd = { os.getenv("GRADLINT_NVIM_PYTHON"), "-m", "gradlint", "server" },
    root_dir = vim.fn.getcwd(),
  })
  vim.lsp.buf_attach_client(0, client)
  local found = vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 50)
  local diagnostics = vim.diagnostic.get(0)
  local seen = {}
  for _, d in ipairs(diagnostics) do
    table.insert(seen, { line = d.lnum + 1, col = d.col + 1, message = d.message,
      code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) })
  end
  say("diagnostics", seen)
  if not found then return end
  local first = diagnostics[1]
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(),
    range = { start = { line = first.lnum, character = 0 }, ["end"] = { line = first.lnum, character = 0 } },
    context = { diagnostics = { {
      range = { start = { line = first.lnum, character = first.col },
                ["end"] = { line = first.end_lnum, character = first.end_col } },
      message = first.message, severity = first.severity, source = first.source,
      code = first.code or (first.user_data and first.user_data.lsp and first.user_data.lsp.code),
    } } },
  }
  local replies = vim.lsp.buf_request_sync(0, "textDocument/codeAction", params, 30000) or {}
  local titles, chosen = {}, nil
  for _, reply in pairs(replies) do
    for _, action in ipairs(reply.result or {}) do
      table.insert(titles, action.title)
      if chosen == nil and action.edit ~= nil and not action.title:find("Disable") then
        chosen = action
      end
    end
  end
  say("actions", titles)
  if chosen == nil then return end
  vim.lsp.util.apply_workspace_edit(chosen.edit, "utf-16")
  local cleared = vim.wait(60000, function() return #vim.diagnostic.get(0) == 0 end, 50)
  say("after fix", { cleared = cleared, text = vim.api.nvim_buf_get_lines(0, 0, -1, false) })
end)
if not ok then say("error", tostring(err)) end
out:close()
vim.cmd("qall!")
