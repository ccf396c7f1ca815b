// Self-service: past resolutions appear as the visitor describes the problem; "this solved
// it" counts the visit as deflected.
(() => {
  const form = document.getElementById("help-form");
  const subject = document.getElementById("subject");
  const body = document.getElementById("body");
  const answers = document.getElementById("answers");
  const list = document.getElementById("answer-list");
  const template = document.getElementById("answer-template");
  const thanks = document.getElementById("solved-thanks");
  let timer = null;
  let asked = 0;
  let language = null;

  async function lookUp() {
    const turn = ++asked;
    const response = await fetch("/help/suggest", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({subject: subject.value, body: body.value}),
    });
    if (!response.ok || turn !== asked) return;  // a later keystroke asked again
    const found = await response.json();
    language = found.language;
    list.replaceChildren(...found.suggestions.map(show));
    answers.hidden = found.suggestions.length === 0;
  }

  function show(suggestion) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.sourceId = suggestion.source_id;
    item.querySelector(".answer-subject").textContent = suggestion.subject;
    item.querySelector(".answer-text").textContent = suggestion.resolution;
    item.querySelector(".answer-language").textContent = suggestion.language;
    item.querySelector(".solved").addEventListener("click", () => solved(suggestion.source_id));
    return item;
  }

  async function solved(sourceId) {
    const response = await fetch("/help/solved", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({source_id: sourceId, language: language}),
    });
    if (response.ok) {
      thanks.hidden = false;
      form.querySelectorAll("button.solved").forEach((button) => (button.disabled = true));
    }
  }

  for (const field of [subject, body]) {
    field.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(lookUp, 350);
    });
  }
  if (body.value) lookUp();
})();
