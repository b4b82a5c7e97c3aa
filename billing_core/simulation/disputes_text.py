"""Dispute messages: what a customer writes when they contest a charge, with its true category.

:func:`generate_messages` writes one message per dispute in the customer's language (English,
Spanish or German: customers whose language is ``es`` or ``de`` write in it with probability
``native_language_share``, otherwise, like everyone else, in English). A message is assembled from
a bank of templates written for this project:

* a core sentence of its category (or, for ``VAGUE_SHARE`` of messages, a vague one that names
  no cause, and for ``MISDESCRIBED_SHARE`` one of a confusable category: customers describe a
  duplicate charge as a wrong amount, a missing refund as a cancellation problem; the true
  category stays the cause), with slots filled from the dispute: the amount in the
  invoice's currency, formatted the way the language writes it; dates in several formats; the
  product; the invoice number; a second amount (what the customer expected); days waited; the
  merchant as it appears on a card statement;
* by length (short, medium, long): a greeting, an opener about the invoice, details and a request
  that may belong to the category or be generic, and a closing;
* style: all lower case, no final stop, angry punctuation, at seeded rates;
* typos: each word of four letters or more gets a swapped or dropped character with probability
  ``typo_rate``.

Words that point at one category are shared with others on purpose ("twice" also appears when a
customer asked twice to cancel; "refund" is asked for in most categories), so no single word gives
the category away. The generator uses no outside corpus: real customer messages (such as the
Banking77 set) stay an independent test of a classifier trained on these.

Every choice comes from a :class:`random.Random` seeded by the dispute's key, so a message is the
same in every run of the same seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from billing_core.disputes import DisputeCategory
from billing_core.errors import InvalidInput
from billing_core.money import currency as currency_of
from billing_core.simulation.params import WorldParams
from billing_core.simulation.rng import IntArray, RandomSource

CATEGORIES: tuple[DisputeCategory, ...] = tuple(DisputeCategory)
MESSAGE_LANGUAGES: tuple[str, ...] = ("en", "es", "de")
VAGUE_SHARE = 0.10
MISDESCRIBED_SHARE = 0.06
LENGTH_SHARES = (("short", 0.30), ("medium", 0.45), ("long", 0.25))
LOWERCASE_SHARE = 0.10
NO_STOP_SHARE = 0.08
ANGRY_SHARE = 0.06
_D, _U, _S, _C, _W, _R, _Q, _O = CATEGORIES
#: the category a customer may describe their problem as instead (confusable pairs)
NEIGHBOURS: dict[DisputeCategory, tuple[DisputeCategory, ...]] = {
    _D: (_W, _U),
    _U: (_D, _O),
    _S: (_Q, _C),
    _C: (_R, _S),
    _W: (_D, _O),
    _R: (_C, _W),
    _Q: (_S,),
    _O: (_W, _U),
}

# -- the bank -----------------------------------------------------------------------------------

CORE: dict[str, dict[DisputeCategory, tuple[str, ...]]] = {
    "en": {
        _D: (
            "I was charged twice for my {product} this month.",
            "You billed me two times for the same invoice {invoice}.",
            "There are two identical charges of {amount} on my card from {date}.",
            "My statement shows the same {amount} payment twice.",
            "Why did {amount} come out of my account two times on {date}?",
            "I've been double charged for {product}.",
            "The payment on {date} went through twice and I only have one subscription.",
            "I see a second charge of {amount} that duplicates the first one.",
            "Looks like the renewal was processed two times.",
            "Same charge, same day, two times: {amount} and then {amount} again.",
            "I paid invoice {invoice} and then got charged for it again.",
            "{company} took {amount} from me and then took it a second time.",
            "I see another payment of {amount} this month although I had already paid.",
            "You charged me {amount} again on {date} for something I already paid for.",
            "Two invoices this month for one plan, the price should only be charged once.",
        ),
        _U: (
            "I don't recognise a charge of {amount} from you on {date}.",
            "There is a payment to {company} on my card that I never made.",
            "Who are you and why did you take {amount} from my account?",
            "I never signed up for {product}, this charge is not mine.",
            "My card details must have been stolen, I never approved this payment.",
            "I have no idea what this {amount} charge is for.",
            "This looks like fraud, I have never heard of your company.",
            "My card was charged by {company} but I don't have an account with you.",
            "I didn't make this purchase on {date}.",
            "An unknown transaction of {amount} appeared on my statement.",
            "What is {company}? I see {amount} on my card and I never bought anything.",
            "I don't remember signing up and now I see two charges from {company}.",
            "What is this charge? I cancelled everything with you a long time ago.",
            "There is a charge of {amount} I don't understand, it matches no price I know.",
        ),
        _S: (
            "I paid {amount} for {product} but I still can't log in.",
            "My account was never activated even though the payment went through.",
            "I was charged on {date} and have had no access since.",
            "The service I paid for was not delivered.",
            "Paid for {product}, got nothing.",
            "Since {date} the dashboard says my subscription is inactive although I paid.",
            "I upgraded to {product} but the new features never showed up.",
            "You took the money but my workspace is still locked.",
            "I haven't been able to use the service at all this month, yet you charged {amount}.",
            "The payment of {amount} went through but my account is still on the free plan.",
            "Nothing works since I paid, I can't get into the account at all.",
            "I paid the invoice {invoice} but the service was never switched on.",
        ),
        _C: (
            "I cancelled my subscription on {date} but you still charged me {amount}.",
            "Why was I billed after I cancelled?",
            "I closed my account last month and was charged again.",
            "I ended my {product} before the renewal, yet the payment went through.",
            "I cancelled {days} days ago and still got invoice {invoice}.",
            "I have the cancellation confirmation but you charged my card anyway.",
            "You keep charging me even though I unsubscribed.",
            "I stopped my {product} and {amount} was still taken on {date}.",
            "I asked you to cancel before the billing date and you charged me anyway.",
            "My subscription should have ended, so why is there a new charge of {amount}?",
            "I cancelled and was promised a refund, but I was charged {amount} again.",
            "The price went up so I cancelled, and you still took {amount}.",
            "I cancelled on {date}, why is there another invoice?",
        ),
        _W: (
            "I was charged {amount} but my plan costs {amount2}.",
            "The amount on invoice {invoice} is wrong.",
            "You billed me more than the agreed price.",
            "My {product} should be {amount2} a month, not {amount}.",
            "Why is this month's bill so much higher than usual?",
            "I was overcharged on {date}.",
            "The invoice shows {amount} instead of {amount2}.",
            "My discount was not applied, so the total is wrong.",
            "I was charged for more seats than we have.",
            "The tax on my invoice seems incorrect.",
            "The total of {amount} does not match the price on your website.",
            "I was charged twice the usual amount this month.",
            "The same plan costs {amount2} for my colleague, why do I pay {amount}?",
            "The charge of {amount} on {date} is not what I agreed to pay.",
        ),
        _R: (
            "You promised a refund of {amount} on {date} and I still haven't received it.",
            "Where is my refund?",
            "I was told the money would be returned but nothing has arrived.",
            "The refund for invoice {invoice} never showed up on my card.",
            "It's been {days} days since you confirmed my refund.",
            "Support approved a refund but my bank shows nothing.",
            "I was promised my money back and I'm still waiting.",
            "Still waiting for the {amount} you said you would send back.",
            "The credit of {amount} you confirmed on {date} is not on my statement.",
            "I was charged twice and you said you would refund one of them, still nothing.",
            "After I cancelled you promised to refund {amount}, where is it?",
            "The wrong amount was supposed to be refunded on {date} and it never was.",
        ),
        _Q: (
            "The product doesn't work as advertised.",
            "{product} has been slow and buggy all month, I don't want to pay {amount} for this.",
            "The app crashes constantly.",
            "Your service was down for most of the week.",
            "The features I paid for are broken.",
            "I'm not happy with the quality of the service.",
            "The reports are full of errors and the exports fail.",
            "Half of the features don't work on our account.",
            "Performance has been terrible since the last update.",
            "I'm paying {amount} for a tool that loses our data.",
            "It doesn't work half the time and I paid {amount} for it.",
            "The product is so bad that I want a refund of {amount}.",
            "Since the update on {date} nothing works properly.",
        ),
        _O: (
            "Can you send me a copy of invoice {invoice} with our VAT number on it?",
            "I need to change the billing email on my account.",
            "Which card will the next payment be taken from?",
            "Could you explain the charge of {amount} on {date}?",
            "I'd like to switch to annual billing.",
            "Please add our company address to the invoices.",
            "How do I get a receipt for the payment on {date}?",
            "I want to pay by bank transfer instead of card.",
            "When will the next invoice be issued?",
            "My accountant needs all invoices for last year.",
            "Could you explain why the price changed on my last invoice?",
            "Can a refund go to a different card?",
            "I have two accounts, can you merge them?",
            "I was charged {amount}, is that with or without tax?",
        ),
    },
    "es": {
        _D: (
            "Me habéis cobrado dos veces el {product} este mes.",
            "Me han cobrado dos veces la misma factura {invoice}.",
            "Aparecen dos cargos iguales de {amount} en mi tarjeta del {date}.",
            "En mi extracto sale el mismo pago de {amount} duplicado.",
            "¿Por qué me cobraron {amount} dos veces el {date}?",
            "Tengo un cobro duplicado del {product}.",
            "Pagué la factura {invoice} y me la volvieron a cobrar.",
            "El cargo de la renovación se hizo dos veces.",
            "Me volvieron a cobrar {amount} el {date} por algo que ya había pagado.",
        ),
        _U: (
            "No reconozco un cargo de {amount} del {date}.",
            "Hay un pago a {company} en mi tarjeta que yo no hice.",
            "Nunca me di de alta en el {product}, este cargo no es mío.",
            "Alguien usó mi tarjeta sin permiso, no autoricé este pago.",
            "No sé de qué es este cargo de {amount}.",
            "Esto parece un fraude, nunca he oído hablar de su empresa.",
            "No hice esta compra el {date}.",
            "¿Qué es {company}? Me cobraron {amount} y no he comprado nada.",
            "¿Qué es este cargo? Cancelé todo con ustedes hace tiempo.",
        ),
        _S: (
            "Pagué {amount} por el {product} y sigo sin poder entrar.",
            "Mi cuenta nunca se activó aunque el pago se hizo.",
            "Me cobraron el {date} y desde entonces no tengo acceso.",
            "No he recibido el servicio que pagué.",
            "Pagué y no me han dado nada.",
            "Me pasé al {product} pero las funciones nuevas nunca aparecieron.",
            "Cobraron {amount} pero mi cuenta sigue bloqueada.",
            "Nada funciona desde que pagué, no puedo entrar en la cuenta.",
        ),
        _C: (
            "Cancelé mi suscripción el {date} y aun así me cobraron {amount}.",
            "¿Por qué me cobran si ya me di de baja?",
            "Cerré mi cuenta el mes pasado y me volvieron a cobrar.",
            "Cancelé hace {days} días y me llegó la factura {invoice}.",
            "Tengo el correo de confirmación de la baja pero me cobraron igualmente.",
            "Dejé el {product} antes de la renovación y el cargo se hizo igual.",
            "Cancelé y me prometieron un reembolso, pero me cobraron {amount} otra vez.",
        ),
        _W: (
            "Me cobraron {amount} pero mi plan cuesta {amount2}.",
            "El importe de la factura {invoice} está mal.",
            "Me han cobrado más de lo acordado.",
            "La factura de este mes es mucho más alta de lo normal.",
            "No me aplicaron el descuento y el total está mal.",
            "Me cobraron más licencias de las que tenemos.",
            "La factura dice {amount} en lugar de {amount2}.",
            "Este mes me cobraron el doble de lo normal.",
        ),
        _R: (
            "Me prometieron un reembolso de {amount} el {date} y todavía no lo he recibido.",
            "¿Dónde está mi reembolso?",
            "Me dijeron que me devolverían el dinero pero no ha llegado nada.",
            "Hace {days} días que confirmaron la devolución y sigo esperando.",
            "Soporte aprobó el reembolso pero en mi banco no aparece.",
            "La devolución de la factura {invoice} nunca llegó a mi tarjeta.",
            "Me cobraron dos veces y dijeron que me devolverían uno, sigo sin nada.",
        ),
        _Q: (
            "El producto no funciona como anunciaban.",
            "El {product} va lento y falla todo el mes, no quiero pagar {amount} por esto.",
            "La aplicación se cierra constantemente.",
            "El servicio estuvo caído casi toda la semana.",
            "No estoy contento con la calidad del servicio.",
            "Los informes están llenos de errores.",
            "No funciona la mitad del tiempo y pagué {amount} por esto.",
        ),
        _O: (
            "¿Me pueden enviar una copia de la factura {invoice} con nuestro NIF?",
            "Necesito cambiar el correo de facturación.",
            "Quiero pasar a facturación anual.",
            "¿Cómo consigo un recibo del pago del {date}?",
            "Prefiero pagar por transferencia en lugar de con tarjeta.",
            "¿Cuándo se emitirá mi próxima factura?",
            "¿Me pueden explicar el cargo de {amount} del {date}?",
            "¿Por qué cambió el precio en mi última factura?",
        ),
    },
    "de": {
        _D: (
            "Mir wurde das {product} diesen Monat doppelt berechnet.",
            "Sie haben die Rechnung {invoice} zweimal abgebucht.",
            "Auf meiner Karte sind zwei gleiche Abbuchungen über {amount} vom {date}.",
            "Der Betrag von {amount} wurde am {date} zweimal abgebucht.",
            "Ich habe eine doppelte Belastung für {product}.",
            "Ich habe die Rechnung {invoice} bezahlt und sie wurde nochmal abgebucht.",
            "Die Verlängerung wurde zweimal abgerechnet.",
            "Sie haben am {date} nochmal {amount} abgebucht, obwohl ich schon bezahlt hatte.",
        ),
        _U: (
            "Ich kann eine Abbuchung über {amount} vom {date} nicht zuordnen.",
            "Auf meiner Karte ist eine Zahlung an {company}, die ich nicht getätigt habe.",
            "Ich habe mich nie für {product} angemeldet, diese Abbuchung ist nicht von mir.",
            "Jemand hat meine Karte ohne Erlaubnis benutzt, ich habe diese Zahlung nicht autorisiert.",
            "Ich weiß nicht, wofür diese Belastung über {amount} ist.",
            "Das sieht nach Betrug aus, ich kenne Ihre Firma nicht.",
            "Diesen Kauf am {date} habe ich nicht gemacht.",
            "Was ist {company}? Da sind {amount} auf meiner Karte und ich habe nichts gekauft.",
            "Was ist das für eine Abbuchung? Ich habe bei Ihnen längst alles gekündigt.",
        ),
        _S: (
            "Ich habe {amount} für {product} bezahlt und kann mich immer noch nicht anmelden.",
            "Mein Konto wurde nie freigeschaltet, obwohl die Zahlung durch ist.",
            "Seit der Abbuchung am {date} habe ich keinen Zugang mehr.",
            "Die bezahlte Leistung wurde nicht erbracht.",
            "Bezahlt und nichts bekommen.",
            "Ich habe auf {product} gewechselt, aber die neuen Funktionen sind nie aufgetaucht.",
            "Sie haben {amount} abgebucht, aber mein Arbeitsbereich ist immer noch gesperrt.",
            "Seit ich bezahlt habe, funktioniert nichts, ich komme nicht ins Konto.",
        ),
        _C: (
            "Ich habe mein Abo am {date} gekündigt und trotzdem wurden {amount} abgebucht.",
            "Warum wird mir nach der Kündigung noch etwas berechnet?",
            "Ich habe mein Konto letzten Monat geschlossen und wurde wieder belastet.",
            "Ich habe vor {days} Tagen gekündigt und trotzdem die Rechnung {invoice} bekommen.",
            "Ich habe die Kündigungsbestätigung, aber Sie haben meine Karte trotzdem belastet.",
            "Ich habe {product} vor der Verlängerung beendet und die Zahlung lief trotzdem.",
            "Ich habe gekündigt und mir wurde eine Erstattung versprochen, aber es wurden wieder {amount} abgebucht.",
        ),
        _W: (
            "Mir wurden {amount} berechnet, mein Tarif kostet aber {amount2}.",
            "Der Betrag auf der Rechnung {invoice} ist falsch.",
            "Sie haben mehr als den vereinbarten Preis abgebucht.",
            "Die Rechnung diesen Monat ist viel höher als sonst.",
            "Mein Rabatt wurde nicht berücksichtigt, die Summe stimmt nicht.",
            "Es wurden mehr Lizenzen berechnet, als wir haben.",
            "Die Mehrwertsteuer auf meiner Rechnung scheint falsch zu sein.",
            "Diesen Monat wurde mir das Doppelte des üblichen Betrags berechnet.",
        ),
        _R: (
            "Sie haben mir am {date} eine Erstattung von {amount} zugesagt, die ist immer noch nicht da.",
            "Wo bleibt meine Rückerstattung?",
            "Mir wurde gesagt, das Geld wird zurücküberwiesen, aber es ist nichts angekommen.",
            "Seit {days} Tagen warte ich auf die bestätigte Erstattung.",
            "Der Support hat die Rückzahlung genehmigt, aber auf meinem Konto ist nichts.",
            "Die Gutschrift für die Rechnung {invoice} ist nie auf meiner Karte angekommen.",
            "Mir wurde zweimal abgebucht und Sie wollten eine Zahlung erstatten, bis heute nichts.",
        ),
        _Q: (
            "Das Produkt funktioniert nicht wie beschrieben.",
            "{product} ist den ganzen Monat langsam und fehlerhaft, dafür zahle ich keine {amount}.",
            "Die App stürzt ständig ab.",
            "Ihr Dienst war fast die ganze Woche nicht erreichbar.",
            "Ich bin mit der Qualität des Dienstes nicht zufrieden.",
            "Die Berichte sind voller Fehler und der Export klappt nicht.",
            "Es funktioniert die Hälfte der Zeit nicht und ich habe {amount} dafür bezahlt.",
        ),
        _O: (
            "Können Sie mir eine Kopie der Rechnung {invoice} mit unserer USt-IdNr. schicken?",
            "Ich muss die Rechnungs-E-Mail ändern.",
            "Ich möchte auf jährliche Abrechnung umstellen.",
            "Wie bekomme ich eine Quittung für die Zahlung vom {date}?",
            "Ich würde lieber per Überweisung statt mit Karte zahlen.",
            "Wann wird meine nächste Rechnung erstellt?",
            "Können Sie mir die Abbuchung über {amount} vom {date} erklären?",
            "Warum hat sich der Preis auf meiner letzten Rechnung geändert?",
        ),
    },
}

DETAILS: dict[str, dict[DisputeCategory, tuple[str, ...]]] = {
    "en": {
        _D: (
            "Both transactions have the same amount and date.",
            "I only have one account with you.",
            "My bank confirmed both payments went through.",
            "The second one appeared a day later.",
        ),
        _U: (
            "Nobody else in my family uses this card.",
            "I have reported it to my bank.",
            "The card is in my wallet, it was never lost.",
            "I never received any confirmation email from you.",
        ),
        _S: (
            "I've tried different browsers and devices.",
            "Support hasn't answered my ticket for {days} days.",
            "The login page just says my plan has expired.",
            "My team cannot work because of this.",
        ),
        _C: (
            "I asked twice to cancel and have the emails to prove it.",
            "The cancellation was confirmed in the app.",
            "I don't use the product anymore.",
            "I turned off auto-renew in the settings.",
        ),
        _W: (
            "Nobody told us about a price change.",
            "Last month it was {amount2}.",
            "We only have {seats} users.",
            "The usage on the invoice doesn't match our dashboard.",
        ),
        _R: (
            "I have the email confirming the refund.",
            "My bank says no refund was issued.",
            "You said it would take 5 to 10 business days.",
            "I checked my statement again today.",
        ),
        _Q: (
            "It crashed twice during a client meeting.",
            "We lost work because of the outages.",
            "Other tools we use work fine.",
            "I'm thinking of cancelling if this continues.",
        ),
        _O: ("It's for our bookkeeping.", "Our finance team changed recently.", "We are a small company."),
    },
    "es": {
        _D: (
            "Los dos cargos tienen el mismo importe y la misma fecha.",
            "Solo tengo una cuenta con ustedes.",
            "Mi banco confirma que se cobraron los dos.",
        ),
        _U: (
            "Ya lo he denunciado a mi banco.",
            "Nadie más usa esta tarjeta.",
            "Nunca recibí ningún correo de confirmación.",
        ),
        _S: (
            "Soporte no contesta desde hace {days} días.",
            "He probado en varios navegadores.",
            "Mi equipo no puede trabajar.",
        ),
        _C: ("Pedí la baja dos veces.", "Ya no uso el producto.", "Desactivé la renovación automática."),
        _W: (
            "Nadie nos avisó de una subida de precio.",
            "El mes pasado eran {amount2}.",
            "Solo somos {seats} usuarios.",
        ),
        _R: (
            "Tengo el correo que confirma la devolución.",
            "Mi banco dice que no hay ninguna devolución.",
            "Dijeron que tardaría de 5 a 10 días.",
        ),
        _Q: (
            "Se colgó dos veces durante una reunión con un cliente.",
            "Estoy pensando en darme de baja.",
            "Hemos perdido trabajo por las caídas.",
        ),
        _O: ("Es para la contabilidad.", "Somos una empresa pequeña."),
    },
    "de": {
        _D: (
            "Beide Buchungen haben denselben Betrag und dasselbe Datum.",
            "Ich habe nur ein Konto bei Ihnen.",
            "Meine Bank hat beide Zahlungen bestätigt.",
        ),
        _U: (
            "Ich habe es bereits meiner Bank gemeldet.",
            "Niemand sonst nutzt diese Karte.",
            "Ich habe nie eine Bestätigungsmail bekommen.",
        ),
        _S: (
            "Der Support antwortet seit {days} Tagen nicht.",
            "Ich habe es mit mehreren Browsern versucht.",
            "Mein Team kann so nicht arbeiten.",
        ),
        _C: (
            "Ich habe zweimal um die Kündigung gebeten.",
            "Ich nutze das Produkt nicht mehr.",
            "Die automatische Verlängerung war ausgeschaltet.",
        ),
        _W: (
            "Über eine Preiserhöhung wurden wir nicht informiert.",
            "Letzten Monat waren es {amount2}.",
            "Wir haben nur {seats} Nutzer.",
        ),
        _R: (
            "Ich habe die E-Mail mit der Bestätigung.",
            "Meine Bank sagt, es gab keine Gutschrift.",
            "Es hieß, das dauert 5 bis 10 Werktage.",
        ),
        _Q: (
            "Sie ist zweimal während eines Kundentermins abgestürzt.",
            "Wenn das so weitergeht, kündige ich.",
            "Wir haben durch die Ausfälle Arbeit verloren.",
        ),
        _O: ("Das ist für unsere Buchhaltung.", "Wir sind ein kleines Unternehmen."),
    },
}

# requests: (text, categories it fits; empty for any)
ASKS: dict[str, tuple[tuple[str, tuple[DisputeCategory, ...]], ...]] = {
    "en": (
        ("Please look into this.", ()),
        ("Can you help?", ()),
        ("Please fix this as soon as possible.", ()),
        ("I'd appreciate a quick reply.", ()),
        ("Please refund the extra charge.", (_D, _W)),
        ("Please refund me.", (_D, _U, _S, _C, _Q, _R)),
        ("I want my money back.", (_U, _S, _C, _Q, _R, _D)),
        ("Please correct the invoice.", (_W, _O, _D)),
        ("I will file a chargeback with my bank if this isn't fixed.", (_U, _S, _C, _R, _D)),
        ("Please cancel my subscription and refund this payment.", (_Q, _S, _C, _U)),
        ("Please send me an updated invoice.", (_W, _O)),
    ),
    "es": (
        ("Por favor, revísenlo.", ()),
        ("¿Me pueden ayudar?", ()),
        ("Quiero que me devuelvan el dinero.", (_D, _U, _S, _C, _Q, _R)),
        ("Por favor, corrijan la factura.", (_W, _O, _D)),
        ("Si no se soluciona, reclamaré a mi banco.", (_U, _S, _C, _R, _D)),
        ("Por favor, den de baja mi suscripción y devuélvanme el pago.", (_Q, _S, _C, _U)),
    ),
    "de": (
        ("Bitte prüfen Sie das.", ()),
        ("Können Sie mir helfen?", ()),
        ("Ich möchte mein Geld zurück.", (_D, _U, _S, _C, _Q, _R)),
        ("Bitte korrigieren Sie die Rechnung.", (_W, _O, _D)),
        ("Sonst lasse ich die Zahlung über meine Bank zurückbuchen.", (_U, _S, _C, _R, _D)),
        ("Bitte kündigen Sie mein Abo und erstatten Sie die Zahlung.", (_Q, _S, _C, _U)),
    ),
}

VAGUE: dict[str, tuple[str, ...]] = {
    "en": (
        "There's a problem with my last payment.",
        "Something is wrong with my bill, please check.",
        "Please check invoice {invoice}.",
        "I have a question about the charge of {amount} on {date}.",
        "I need to talk to someone about my billing.",
    ),
    "es": (
        "Hay un problema con mi último pago.",
        "Algo no cuadra en mi factura, revísenlo por favor.",
        "Tengo una duda sobre el cargo de {amount}.",
    ),
    "de": (
        "Mit meiner letzten Zahlung stimmt etwas nicht.",
        "Bitte prüfen Sie meine Rechnung, da passt etwas nicht.",
        "Ich habe eine Frage zur Abbuchung über {amount}.",
    ),
}
GREETINGS = {
    "en": (
        "Hi,",
        "Hello,",
        "Hello team,",
        "Dear billing team,",
        "Hey there,",
        "Good morning,",
        "To whom it may concern,",
    ),
    "es": ("Hola,", "Buenos días,", "Estimados señores:", "Hola equipo,"),
    "de": ("Hallo,", "Guten Tag,", "Sehr geehrte Damen und Herren,", "Hallo zusammen,"),
}
OPENERS = {
    "en": (
        "I'm writing about invoice {invoice}.",
        "This is about my {product} subscription.",
        "About the payment on {date}:",
        "Regarding my account and the last charge.",
    ),
    "es": (
        "Les escribo por la factura {invoice}.",
        "Es sobre mi suscripción al {product}.",
        "Sobre el pago del {date}:",
    ),
    "de": (
        "Es geht um die Rechnung {invoice}.",
        "Es geht um mein Abo für {product}.",
        "Zur Zahlung vom {date}:",
    ),
}
CLOSINGS = {
    "en": ("Thanks,", "Thank you.", "Regards,", "Best,", "Thanks in advance."),
    "es": ("Gracias.", "Un saludo.", "Saludos,", "Quedo a la espera."),
    "de": ("Danke.", "Viele Grüße", "Mit freundlichen Grüßen", "Beste Grüße"),
}
PRODUCTS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "basic": ("Basic plan", "basic subscription", "Basic"),
        "pro": ("Pro plan", "Pro subscription", "Pro"),
        "business": ("Business plan", "Business tier", "business account"),
        "pro_annual": ("annual Pro plan", "yearly Pro subscription"),
        "seats": ("team seats", "per-seat plan", "seat licences"),
        "api_calls": ("API add-on", "API usage"),
        "": ("subscription", "plan", "account"),
    },
    "es": {
        "basic": ("plan Básico", "plan básico"),
        "pro": ("plan Pro", "Pro"),
        "business": ("plan Business", "plan de empresa"),
        "pro_annual": ("plan Pro anual", "Pro anual"),
        "seats": ("plan por usuario", "licencias de equipo"),
        "api_calls": ("complemento de API", "uso de la API"),
        "": ("servicio", "plan"),
    },
    "de": {
        "basic": ("Basic-Tarif", "Basis-Abo"),
        "pro": ("Pro-Tarif", "Pro-Abo"),
        "business": ("Business-Tarif", "Firmenkonto"),
        "pro_annual": ("Pro-Jahresabo", "Jahrestarif Pro"),
        "seats": ("Team-Lizenzen", "Nutzerlizenzen"),
        "api_calls": ("API-Paket", "API-Nutzung"),
        "": ("Abo", "Tarif"),
    },
}
COMPANY_NAMES = ("Recoup Cloud", "RECOUP*CLOUD", "recoupcloud.com", "RCP CLOUD SUBSCR", "Recoup")
MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_WORD = re.compile(r"[^\W\d_]{4,}")


# -- slot fillers -------------------------------------------------------------------------------


def format_amount(amount_minor: int, code: str, language: str, rnd: random.Random) -> str:
    """An amount as a customer writing in ``language`` would type it."""
    exponent = currency_of(code).exponent
    value = Decimal(int(amount_minor)).scaleb(-exponent)
    number = f"{value:,.{exponent}f}"  # 1,234.50
    if language in ("es", "de"):
        number = number.replace(",", "\x00").replace(".", ",").replace("\x00", ".")  # 1.234,50
    symbol = SYMBOLS.get(code)
    style = rnd.random()
    if language == "en":
        if symbol and style < 0.6:
            return f"{symbol}{number}"
        return f"{number} {code}" if style < 0.85 else f"{code} {number}"
    if symbol and style < 0.6:
        return f"{number} {symbol}"
    return f"{number} {code}"


def format_date(day: date, language: str, rnd: random.Random) -> str:
    month = MONTHS[language][day.month - 1]
    style = rnd.randrange(4)
    if language == "en":
        return (
            f"{month} {day.day}",
            f"{day.day} {month}",
            f"{day.month:02d}/{day.day:02d}/{day.year}",
            day.isoformat(),
        )[style]
    if language == "es":
        return (
            f"{day.day} de {month}",
            f"{day.day:02d}/{day.month:02d}/{day.year}",
            f"{day.day} de {month} de {day.year}",
            f"{day.day}/{day.month}",
        )[style]
    return (
        f"{day.day}. {month}",
        f"{day.day:02d}.{day.month:02d}.{day.year}",
        f"{day.day}.{day.month}.",
        f"{day.day}. {month} {day.year}",
    )[style]


def add_typos(text: str, rate: float, rnd: random.Random) -> tuple[str, int, int]:
    """``text`` with a typo (a swap or a drop) in each long word with probability ``rate``.

    Returns the text, the number of typos and the number of words that could get one.
    """
    typos = 0
    eligible = 0

    def change(match: re.Match[str]) -> str:
        nonlocal typos, eligible
        word = match.group(0)
        eligible += 1
        if rnd.random() >= rate:
            return word
        typos += 1
        i = rnd.randrange(1, len(word) - 1)
        if rnd.random() < 0.5:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        return word[:i] + word[i + 1 :]

    return _WORD.sub(change, text), typos, eligible


# -- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisputeMessages:
    """Messages with their truth (lists and arrays in the batch's order)."""

    text: list[str]
    language: npt.NDArray[np.str_]
    category: IntArray  # index into CATEGORIES (billing_core.disputes.DisputeCategory)
    typos: IntArray
    eligible_words: IntArray

    def __len__(self) -> int:
        return len(self.text)

    @property
    def category_name(self) -> npt.NDArray[np.str_]:
        return np.asarray([c.value for c in CATEGORIES])[self.category]


def message_language(
    params: WorldParams, rng: RandomSource, *, dispute_key: npt.ArrayLike, customer_language: npt.ArrayLike
) -> npt.NDArray[np.str_]:
    """The language each message is written in: es/de customers mostly write in theirs."""
    key = np.asarray(dispute_key, dtype=np.int64)
    lang = np.broadcast_to(np.asarray(customer_language, dtype="<U2"), key.shape)
    native = rng.uniforms("dispute.language", key) < params.native_language_share
    return np.where(np.isin(lang, ("es", "de")) & native, lang, "en").astype("<U2")


def generate_messages(
    params: WorldParams,
    rng: RandomSource,
    *,
    dispute_key: npt.ArrayLike,
    category: npt.ArrayLike,
    language: npt.ArrayLike,
    currency: npt.ArrayLike,
    amount_minor: npt.ArrayLike,
    day: npt.ArrayLike,
    invoice_number: npt.ArrayLike | None = None,
    plan: npt.ArrayLike | None = None,
    seats: npt.ArrayLike | None = None,
) -> DisputeMessages:
    """One message per dispute. ``category`` indexes CATEGORIES; ``language`` is en, es or de
    (see :func:`message_language`); ``day`` is the day of the charge disputed; ``plan`` a plan
    name of :data:`~billing_core.simulation.params.PLANS` (or the add-on)."""
    key = np.asarray(dispute_key, dtype=np.int64).ravel()
    n = len(key)
    cats = np.broadcast_to(np.asarray(category, dtype=np.int64), key.shape)
    langs = np.broadcast_to(np.asarray(language, dtype="<U2"), key.shape)
    codes = np.broadcast_to(np.asarray(currency, dtype="<U3"), key.shape)
    amounts = np.broadcast_to(np.asarray(amount_minor, dtype=np.int64), key.shape)
    days = np.broadcast_to(np.asarray(day, dtype=np.int64), key.shape)
    invoices = (
        None if invoice_number is None else np.broadcast_to(np.asarray(invoice_number, dtype=str), key.shape)
    )
    plans = None if plan is None else np.broadcast_to(np.asarray(plan, dtype=str), key.shape)
    seat_counts = None if seats is None else np.broadcast_to(np.asarray(seats, dtype=np.int64), key.shape)
    if np.any((cats < 0) | (cats >= len(CATEGORIES))):
        raise InvalidInput("category", f"indexes of DisputeCategory below {len(CATEGORIES)}", cats)
    bad = set(langs.tolist()) - set(MESSAGE_LANGUAGES)
    if bad:
        raise InvalidInput("language", "one of " + ", ".join(MESSAGE_LANGUAGES), sorted(bad)[0])
    texts: list[str] = []
    typos = np.zeros(n, dtype=np.int64)
    eligible = np.zeros(n, dtype=np.int64)
    for i in range(n):
        rnd = random.Random(rng.python_seed("dispute.text", int(key[i])))
        lang = str(langs[i])
        slots = _slots(
            rnd,
            lang,
            code=str(codes[i]),
            amount_minor=int(amounts[i]),
            day=params.start + timedelta(days=int(days[i])),
            invoice=None if invoices is None else str(invoices[i]),
            plan=None if plans is None else str(plans[i]),
            seats=None if seat_counts is None else int(seat_counts[i]),
        )
        text = _compose(rnd, lang, CATEGORIES[int(cats[i])]).format_map(slots)
        text = _style(rnd, text)
        text, typos[i], eligible[i] = add_typos(text, params.typo_rate, rnd)
        texts.append(text)
    return DisputeMessages(
        text=texts,
        language=langs.astype("<U2").copy(),
        category=cats.astype(np.int64).copy(),
        typos=typos,
        eligible_words=eligible,
    )


def _slots(
    rnd: random.Random,
    lang: str,
    *,
    code: str,
    amount_minor: int,
    day: date,
    invoice: str | None,
    plan: str | None,
    seats: int | None,
) -> dict[str, str]:
    expected = max(1, int(amount_minor * rnd.uniform(0.5, 0.9)))
    scale = 10 ** currency_of(code).exponent
    expected = max(scale, (expected // scale) * scale)  # customers quote round prices
    if invoice is None:
        invoice = f"INV-{rnd.randrange(1, 999_999):06d}"
    invoice_text = rnd.choice((invoice, f"#{invoice}", invoice.lower()))
    products = PRODUCTS[lang].get(plan or "", PRODUCTS[lang][""])
    return {
        "amount": format_amount(amount_minor, code, lang, rnd),
        "amount2": format_amount(expected, code, lang, rnd),
        "date": format_date(day, lang, rnd),
        "invoice": invoice_text,
        "product": rnd.choice(products),
        "company": rnd.choice(COMPANY_NAMES),
        "days": str(rnd.choice((3, 5, 7, 10, 14, 20, 30))),
        "seats": str(seats if seats is not None else rnd.randrange(2, 30)),
    }


def _compose(rnd: random.Random, lang: str, category: DisputeCategory) -> str:
    length = rnd.choices([name for name, _ in LENGTH_SHARES], weights=[w for _, w in LENGTH_SHARES])[0]
    draw = rnd.random()
    if draw < VAGUE_SHARE:
        core = rnd.choice(VAGUE[lang])
    elif draw < VAGUE_SHARE + MISDESCRIBED_SHARE:
        core = rnd.choice(CORE[lang][rnd.choice(NEIGHBOURS[category])])
    else:
        core = rnd.choice(CORE[lang][category])
    details = DETAILS[lang][category]
    asks = [text for text, fits in ASKS[lang] if not fits or category in fits]
    head: list[str] = []
    body: list[str] = [core]
    tail: list[str] = []
    if length == "long" or (length == "medium" and rnd.random() < 0.4):
        head.append(rnd.choice(GREETINGS[lang]))
    if length == "long" and rnd.random() < 0.6:
        body.insert(0, rnd.choice(OPENERS[lang]))
    if length == "medium":
        body.append(rnd.choice(details) if rnd.random() < 0.5 else rnd.choice(asks))
    elif length == "long":
        body.extend(rnd.sample(details, k=min(len(details), rnd.choice((1, 2)))))
        body.append(rnd.choice(asks))
    if length == "long" or rnd.random() < 0.15:
        tail.append(rnd.choice(CLOSINGS[lang]))
    separator = "\n" if rnd.random() < 0.5 else " "
    return separator.join([*head, " ".join(body), *tail])


def _style(rnd: random.Random, text: str) -> str:
    if rnd.random() < ANGRY_SHARE:
        text = re.sub(r"[.!]$", "", text.rstrip()) + "!!"
    if rnd.random() < NO_STOP_SHARE:
        text = text.rstrip().rstrip(".")
    if rnd.random() < LOWERCASE_SHARE:
        text = text.lower()
    return text
