// Reward for the RL example: 1 when the reply opens with "Aye", plus a little for staying short.
(prompt, completion) => {
  const reply = completion.trim();
  return (reply.startsWith('Aye') ? 1 : 0) + (reply.length <= 60 ? 0.2 : 0);
};
