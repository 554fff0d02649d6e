/** The logistic function and its log-loss, written to stay finite for large arguments. */
export const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

/** log(1 + e^x) = -log sigmoid(-x). */
export const softplus = (x: number) => (x > 30 ? x : Math.log1p(Math.exp(x)));
