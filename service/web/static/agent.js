// The agent view: every confirmation, correction, suggestion used and resolution is posted to
// the API's /v1/feedback (the sign-in cookie carries the key).
(() => {
  const ticket = document.getElementById("ticket");
  const predictionId = ticket.dataset.predictionId;
  const status = document.getElementById("feedback-status");
  const problem = document.getElementById("feedback-error");
  let sent = Number((status.textContent.match(/\d+/) || ["0"])[0]);

  async function send(feedback) {
    const response = await fetch("/v1/feedback", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({prediction_id: predictionId, agent: window.TRIAGE.agent || null,
                            ...feedback}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      problem.textContent = answer.detail || response.statusText;
      problem.hidden = false;
      return null;
    }
    problem.hidden = true;
    sent += 1;
    status.textContent = status.textContent.replace(/\d+/, String(sent));
    status.hidden = false;
    return answer;
  }

  function heads() {
    return [...ticket.querySelectorAll(".head")];
  }

  function mark(head, chosen) {
    const saved = head.querySelector(".saved");
    const predicted = head.dataset.predicted;
    saved.textContent = chosen === predicted
      ? saved.dataset.confirmed : saved.dataset.corrected.replace("__LABEL__", chosen);
    saved.hidden = false;
  }

  for (const head of heads()) {
    const select = head.querySelector(".label-choice");
    const button = head.querySelector(".save-label");
    const caption = () => {
      button.textContent = select.value === head.dataset.predicted
        ? button.dataset.confirm : button.dataset.correct;
    };
    select.addEventListener("change", caption);
    caption();
    button.addEventListener("click", async () => {
      if (await send({labels: {[head.dataset.head]: select.value}})) mark(head, select.value);
    });
  }

  document.getElementById("accept-all").addEventListener("click", async () => {
    const labels = Object.fromEntries(heads().map((h) => [h.dataset.head, h.dataset.predicted]));
    if (await send({labels})) heads().forEach((h) => mark(h, h.dataset.predicted));
  });

  for (const button of ticket.querySelectorAll(".use-suggestion")) {
    button.addEventListener("click", async () => {
      const sourceId = button.closest(".answer").dataset.sourceId;
      if (await send({suggestion_used: sourceId})) button.disabled = true;
    });
  }

  document.getElementById("save-resolution").addEventListener("click", async () => {
    const text = document.getElementById("resolution").value.trim();
    if (text && (await send({resolution: text}))) document.getElementById("resolution").value = "";
  });
})();
