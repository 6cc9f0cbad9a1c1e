/* The conversation page: new messages and delivery statuses without a reload (polling),
   canned replies, the AI suggestion, and the WhatsApp window hint for the chosen channel. */
(function () {
  "use strict";
  const page = document.querySelector(".sb-conversation");
  if (!page) return;
  const timeline = document.getElementById("timeline");
  const text = document.getElementById("reply-text");
  const POLL_MS = 3000;
  let since = page.dataset.since;

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function place(node) {
    const existing = document.getElementById(node.id);
    if (existing) {
      existing.replaceWith(node);
      return;
    }
    const empty = timeline.querySelector(".sb-empty");
    if (empty) empty.remove();
    timeline.appendChild(node);
    node.scrollIntoView({ block: "nearest" });
  }

  function apply(data) {
    since = data.now;
    for (const item of data.messages.concat(data.activities)) {
      const node = fragment(item.html);
      if (node && node.id) place(node);
    }
    const state = data.conversation;
    const agent = document.getElementById("conversation-agent");
    if (agent) agent.textContent = state.agent_active ? "AI agent answering" : "a person is handling it";
    const assignee = document.getElementById("conversation-assignee");
    if (assignee) assignee.textContent = state.assignee ? "assigned to " + state.assignee : "unassigned";
  }

  async function poll() {
    const visible = document.visibilityState === "visible" ? "1" : "0";
    const url = page.dataset.pollUrl + "?since=" + encodeURIComponent(since) + "&visible=" + visible;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) apply(await response.json());
    } catch (error) {
      /* offline for a moment: the next poll catches up (it overlaps the previous one) */
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }
  window.setTimeout(poll, POLL_MS);

  const canned = document.getElementById("canned");
  if (canned && text) {
    canned.addEventListener("change", function () {
      if (canned.value) {
        text.value = canned.value;
        text.focus();
      }
    });
  }

  const suggestion = document.getElementById("ai-suggestion");
  if (suggestion && text) {
    suggestion.addEventListener("click", async function (event) {
      const target = event.target;
      const shown = document.getElementById("ai-suggestion-text");
      if (target.matches("[data-use-suggestion]")) {
        text.value = shown.textContent.trim();
        text.focus();
      } else if (target.matches("[data-ask-suggestion]")) {
        target.disabled = true;
        shown.textContent = "Asking…";
        try {
          const response = await fetch(page.dataset.suggestUrl, { credentials: "same-origin" });
          const data = await response.json();
          if (data.suggestion) {
            shown.textContent = data.suggestion;
            target.textContent = "Use it";
            target.removeAttribute("data-ask-suggestion");
            target.setAttribute("data-use-suggestion", "");
          } else {
            shown.textContent = (data.error && data.error.message) || "The AI has no reply to suggest.";
          }
        } catch (error) {
          shown.textContent = "The AI could not be reached.";
        } finally {
          target.disabled = false;
        }
      }
    });
  }

  const picker = document.getElementById("reply-channel");
  const windowHint = document.getElementById("whatsapp-window");
  if (picker && windowHint) {
    const update = function () {
      const option = picker.options[picker.selectedIndex];
      const channel = option.dataset.channel || windowHint.dataset.lastChannel;
      windowHint.hidden = channel !== "whatsapp";
    };
    picker.addEventListener("change", update);
    update();
  }
})();
